"""CBTIS request building and response / webhook parsing (pure, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from minigate.domain.money import Money
from minigate.errors import NotificationRejected, ProviderError
from minigate.providers.base import (
    Channel,
    HttpResponse,
    IncomingNotification,
    PaymentRef,
    PaymentRequest,
    ProviderPaymentStatus,
    ProviderRefundStatus,
    RefundRequest,
)
from minigate.providers.cbtis import messages, signing
from minigate.providers.cbtis.messages import AccessToken, CbtisAccount

ACCOUNT = CbtisAccount("cid", "key", "https://cb.example", "wxAPP", "whsec")
NOW = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)
REQ = PaymentRequest("MGorder0001", Money(5680, "HKD"), Channel.WECHAT, "Tea", "https://n",
                     NOW + timedelta(minutes=30), NOW, openid="oOPENID")
REF = PaymentRef("MGorder0001", Money(5680, "HKD"), NOW, "C1")


def _response(payload: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps(payload).encode())


def test_create_body_uses_major_units_and_mini_program_flow() -> None:
    request = messages.build_create(ACCOUNT, REQ)
    assert request.url == "https://cb.example/mch-api/v1/pa/payment_intents/create"
    assert json.loads(request.body) == {
        "amount": "56.80", "currency": "HKD", "merchant_order_id": "MGorder0001",
        "description": "Tea", "notify_url": "https://n",
        "payment_method": {"type": "wechat", "wechat": {
            "flow": "mini_program", "sub_appid": "wxAPP", "sub_openid": "oOPENID"}}}
    token = AccessToken("T0K", NOW)
    assert messages.authorised(request, token).headers["Authorization"] == "Bearer T0K"


def test_create_refuses_long_order_numbers() -> None:
    with pytest.raises(ValueError):
        messages.build_create(ACCOUNT, PaymentRequest(
            "M" * 33, REQ.amount, Channel.WECHAT, "x", "n", NOW, NOW, openid="o"))


WX = {"appId": "wxAPP", "nonceStr": "n", "package": "prepay_id=wx1", "paySign": "S",
      "signType": "RSA", "timeStamp": "1719833981"}


def test_parse_create_takes_next_action_data() -> None:
    created = messages.parse_create(REQ, _response({"code": 0, "message": "ok", "data": {
        "order_id": "C1", "merchant_order_id": "MGorder0001", "status": "PENDING",
        "next_action": {"type": "call_sdk", "data": WX}}}))
    assert created.wechat == WX and created.provider_txn_id == "C1"
    assert created.status is ProviderPaymentStatus.PENDING


def test_parse_create_refusal_keeps_the_code() -> None:
    with pytest.raises(ProviderError) as err:
        messages.parse_create(REQ, _response({"code": 400, "message": "amount"}))
    assert err.value.provider_code == "400"


@pytest.mark.parametrize(("status", "expected"), [
    ("PENDING", ProviderPaymentStatus.PENDING), ("SUCCEEDED", ProviderPaymentStatus.PAID),
    ("CANCELLED", ProviderPaymentStatus.CLOSED), ("REQUIRES_CAPTURE", ProviderPaymentStatus.UNKNOWN),
    ("", ProviderPaymentStatus.UNKNOWN)])
def test_query_statuses(status: str, expected: ProviderPaymentStatus) -> None:
    state = messages.parse_query(REF, _response({"code": 0, "data": {
        "order_id": "C1", "merchant_order_id": "MGorder0001", "amount": "56.80",
        "currency": "HKD", "status": status}}))
    assert state.status is expected and state.amount == Money(5680, "HKD")


@pytest.mark.parametrize("amount", [56.8, "56.801", "5680e-2", None])
def test_query_amount_must_be_an_exact_major_string(amount: object) -> None:
    state = messages.parse_query(REF, _response({"code": 0, "data": {
        "merchant_order_id": "MGorder0001", "amount": amount, "currency": "HKD",
        "status": "SUCCEEDED"}}))
    assert state.amount is None  # the service flags this instead of marking paid


def test_query_not_found_and_other_order() -> None:
    assert messages.parse_query(REF, _response({"code": 404, "message": "x"})).status \
        is ProviderPaymentStatus.NOT_FOUND
    with pytest.raises(ProviderError):
        messages.parse_query(REF, _response({"code": 0, "data": {
            "merchant_order_id": "other", "status": "SUCCEEDED"}}))


def test_login_parses_token_and_expiry() -> None:
    token = messages.parse_login(_response(
        {"token": "abc", "expires_at": "2026-03-01T04:35:06+00:00"}, 201), NOW)
    assert token.token == "abc" and token.expires_at == NOW + timedelta(minutes=30)
    assert token.fresh(NOW) and not token.fresh(NOW + timedelta(minutes=29, seconds=30))
    assert "abc" not in repr(token)
    fallback = messages.parse_login(_response({"code": 0, "data": {"token": "t"}}), NOW)
    assert fallback.expires_at == NOW + timedelta(minutes=30)
    with pytest.raises(ProviderError):
        messages.parse_login(_response({"code": 401}, 401), NOW)


REFUND = RefundRequest(REF, "RFmine", Money(680, "HKD"), reason="broken")


def test_refund_body_and_statuses() -> None:
    body = json.loads(messages.build_refund(ACCOUNT, REFUND).body)
    assert body == {"merchant_order_id": "MGorder0001", "merchant_refund_id": "RFmine",
                    "amount": "6.80", "reason": "broken", "order_id": "C1"}
    for text, status in (("SETTLED", ProviderRefundStatus.SUCCEEDED),
                         ("RECEIVED", ProviderRefundStatus.PENDING),
                         ("FAILED", ProviderRefundStatus.FAILED),
                         ("WHATEVER", ProviderRefundStatus.UNKNOWN)):
        state = messages.parse_refund(REFUND, _response({"code": 0, "data": {"status": text}}))
        assert state is not None and state.status is status
    refused = messages.parse_refund(REFUND, _response({"code": 422, "message": "exceeds"}))
    assert refused is not None and refused.status is ProviderRefundStatus.FAILED
    assert messages.parse_refund(REFUND, _response({"code": 404})) is None


BODY = b'{"notify_type": "payment_success", "data": {"order_id": "C1", "merchant_order_id": "MGorder0001"}}'


def _webhook(body: bytes = BODY, *, at: datetime = NOW, secret: str = "whsec",
             signature: str | None = None) -> IncomingNotification:
    ts = str(int(at.timestamp() * 1000))
    sig = signature if signature is not None else signing.webhook_signature(secret, ts, body)
    return IncomingNotification({"x-timestamp": ts, "x-signature": sig}, body, NOW)


def test_webhook_is_an_untrusted_hint() -> None:
    verified = messages.verify_notification(ACCOUNT, _webhook())
    assert verified.trusted is False
    assert verified.payment is not None
    assert verified.payment.provider_order_no == "MGorder0001"
    assert verified.payment.status is ProviderPaymentStatus.UNKNOWN
    assert verified.event_key == "payment_success:MGorder0001"


@pytest.mark.parametrize("webhook", [
    _webhook(secret="other"), _webhook(signature="ab" * 32), _webhook(signature=""),
    _webhook(at=NOW - timedelta(minutes=6)), _webhook(at=NOW + timedelta(minutes=6)),
    IncomingNotification({"x-signature": "x"}, BODY, NOW),
])
def test_bad_webhooks_are_rejected(webhook: IncomingNotification) -> None:
    with pytest.raises(NotificationRejected):
        messages.verify_notification(ACCOUNT, webhook)


def test_tampered_body_is_rejected() -> None:
    good = _webhook()
    tampered = IncomingNotification(good.headers, BODY.replace(b"C1", b"C2"), NOW)
    with pytest.raises(NotificationRejected):
        messages.verify_notification(ACCOUNT, tampered)


def test_no_secret_no_webhooks() -> None:
    account = CbtisAccount("cid", "key", "https://cb.example", "wxAPP", "")
    with pytest.raises(NotificationRejected):
        messages.verify_notification(account, _webhook(secret=""))
