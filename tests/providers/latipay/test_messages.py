"""Latipay requests and responses, built and parsed without any I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

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
from minigate.providers.latipay import messages, signing
from minigate.providers.latipay.messages import LatipayAccount

ACCOUNT = LatipayAccount("U000334333", "W00000001", "111222333", "https://lp.test", "wxapp")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _request(channel: Channel = Channel.WECHAT) -> PaymentRequest:
    return PaymentRequest("MG123", Money(12030, "NZD"), channel, "Ticket", "https://m/notify",
                          NOW, NOW, openid="o-alice" if channel is Channel.WECHAT else None,
                          client_ip="10.0.0.1")


def _response(data: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps(data).encode())


def test_miniapppay_body_is_signed_with_decimal_amount() -> None:
    req = messages.build_create(ACCOUNT, _request())
    assert req.url == "https://lp.test/v2/miniapppay"
    body = json.loads(req.body)
    assert body["amount"] == "120.30" and body["open_id"] == "o-alice"
    assert body["app_id"] == "wxapp" and body["notify_url"] == "https://m/notify"
    assert body["signature"] == signing.sign_request(body, "111222333")


def test_minialipay_body_has_version_ip_and_callback() -> None:
    body = json.loads(messages.build_create(ACCOUNT, _request(Channel.ALIPAY)).body)
    assert (body["version"], body["ip"], body["callback_url"]) == ("2.0", "10.0.0.1",
                                                                   "https://m/notify")
    assert "payment_method" not in body


def test_wechat_params_rename_package_str() -> None:
    created = messages.parse_create(_request(), _response({
        "payment": {"nonceStr": "n", "paySign": "S", "signType": "MD5", "timeStamp": "1",
                    "packageStr": "prepay_id=wx1"}, "paydata": {"order_id": "2017"}}))
    assert created.wechat == {"timeStamp": "1", "nonceStr": "n", "package": "prepay_id=wx1",
                              "signType": "MD5", "paySign": "S"}
    assert created.provider_txn_id == "2017"


def test_gatewaydata_joined_in_received_order() -> None:
    created = messages.parse_create(_request(Channel.ALIPAY), _response({
        "code": 0, "gatewaydata": {"service": "s", "partner": "p", "sign": "x=y"},
        "paydata": {"orderId": "S1"}}))
    assert created.alipay == {"orderStr": "service=s&partner=p&sign=x=y"}
    assert created.provider_txn_id == "S1"


def test_error_code_becomes_provider_error_with_code() -> None:
    with pytest.raises(ProviderError) as err:
        messages.parse_create(_request(), _response({"code": 206, "message": "bad sig"}))
    assert err.value.provider_code == "206"


def _query_body(amount_literal: str, status: str = "paid", sign_amount: str = "120.30") -> bytes:
    sig = signing.result_signature("111222333", "MG123", "wechat", status, "NZD", sign_amount)
    return (f'{{"code":0,"merchant_reference":"MG123","currency":"NZD","amount":{amount_literal},'
            f'"payment_method":"wechat","status":"{status}","order_id":"2017",'
            f'"signature":"{sig}"}}').encode()


REF = PaymentRef("MG123", Money(12030, "NZD"), NOW, "2017")


def test_query_amount_is_a_json_number_and_verified() -> None:
    state = messages.parse_query(ACCOUNT, REF, HttpResponse(200, {}, _query_body("120.30")))
    assert state.status is ProviderPaymentStatus.PAID
    assert state.amount == Money(12030, "NZD")


@pytest.mark.parametrize("literal", ["120.3", "120.300", "1.203e2"])
def test_query_amount_in_other_number_forms_is_exact(literal: str) -> None:
    state = messages.parse_query(ACCOUNT, REF, HttpResponse(200, {}, _query_body(literal)))
    assert state.status is ProviderPaymentStatus.PAID
    assert state.amount == Money(12030, "NZD")


def test_query_amount_as_a_json_integer() -> None:
    """A serialiser that drops a zero fraction sends ``120``: still exactly 120.00."""
    sig = signing.result_signature("111222333", "MG120", "wechat", "paid", "NZD", "120.00")
    body = (f'{{"code":0,"merchant_reference":"MG120","currency":"NZD","amount":120,'
            f'"payment_method":"wechat","status":"paid","order_id":2017,'
            f'"signature":"{sig}"}}').encode()
    ref = PaymentRef("MG120", Money(12000, "NZD"), NOW, "2017")
    state = messages.parse_query(ACCOUNT, ref, HttpResponse(200, {}, body))
    assert state.amount == Money(12000, "NZD") and state.status is ProviderPaymentStatus.PAID
    assert state.provider_txn_id == "2017"


def test_query_with_bad_signature_is_refused() -> None:
    body = _query_body("120.30", sign_amount="1.00")
    with pytest.raises(ProviderError):
        messages.parse_query(ACCOUNT, REF, HttpResponse(200, {}, body))


def test_query_request_signs_reference_and_user() -> None:
    req = messages.build_query(ACCOUNT, REF)
    parts = urlsplit(req.url)
    assert parts.path == "/v2/transaction/MG123"
    query = parse_qs(parts.query)
    expected = signing.sign_request({"merchant_reference": "MG123", "user_id": "U000334333"},
                                    "111222333")
    assert query == {"user_id": ["U000334333"], "signature": [expected]}


def _notification(**overrides: str) -> IncomingNotification:
    form = {"merchant_reference": "MG123", "order_id": "2017", "currency": "NZD",
            "amount": "120.30", "payment_method": "wechat", "status": "paid",
            "pay_time": "2026-01-01 10:00:00"}
    form["signature"] = signing.result_signature("111222333", "MG123", "wechat", "paid", "NZD",
                                                 "120.30")
    form.update(overrides)
    return IncomingNotification({}, urlencode(form).encode(), NOW)


def test_notification_verified_and_mapped() -> None:
    verified = messages.verify_notification(ACCOUNT, _notification())
    assert verified.event_key == "MG123:paid"
    assert verified.payment is not None
    assert verified.payment.amount == Money(12030, "NZD")
    assert verified.payment.status is ProviderPaymentStatus.PAID


@pytest.mark.parametrize("tamper", [{"amount": "1.00"}, {"status": "pending"},
                                    {"signature": "0" * 64}, {"currency": "AUD"}])
def test_tampered_notification_rejected(tamper: dict[str, str]) -> None:
    with pytest.raises(NotificationRejected):
        messages.verify_notification(ACCOUNT, _notification(**tamper))


def test_notification_with_repeated_field_rejected() -> None:
    good = _notification()
    with pytest.raises(NotificationRejected):
        messages.verify_notification(
            ACCOUNT, IncomingNotification({}, good.body + b"&status=paid", NOW))


def test_refund_puts_our_number_first_in_reference() -> None:
    req = RefundRequest(REF, "RF999", Money(500, "NZD"), reason="broken cup")
    body = json.loads(messages.build_refund(ACCOUNT, req).body)
    assert body["reference"] == "RF999 broken cup" and body["refund_amount"] == "5.00"
    assert body["order_id"] == "2017"
    done = messages.parse_refund(req, _response({"code": 562, "message": "done"}))
    assert done.status is ProviderRefundStatus.SUCCEEDED
    refused = messages.parse_refund(req, _response({"code": 550, "message": "too much"}))
    assert refused.status is ProviderRefundStatus.FAILED


def test_ack_format() -> None:
    assert messages.ack(True) == (200, b"sent")
    assert messages.ack(False)[1] != b"sent"
