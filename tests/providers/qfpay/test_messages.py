"""QFPay request building and response / notification parsing (pure, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

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
from minigate.providers.qfpay import messages, signing
from minigate.providers.qfpay.messages import QfpayAccount
from tests.conftest import FIXTURES

NOTIFY = json.loads((FIXTURES / "qfpay_vectors.json").read_text())["qfpay_notify_selfgenerated"]
ACCOUNT = QfpayAccount("APPCODE1", "client-key-1", "https://qf.example/")
CREATED = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)


def _request(minutes: float = 30, **overrides: Any) -> PaymentRequest:
    values: dict[str, Any] = dict(
        provider_order_no="MGorder0001", amount=Money(12345, "HKD"), channel=Channel.WECHAT,
        description="Milk tea x2!", notify_url="https://m.example/v1/notify/qfpay",
        expires_at=CREATED + timedelta(minutes=minutes), created_at=CREATED, openid="oOPENID")
    values.update(overrides)
    return PaymentRequest(**values)


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def _response(payload: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps(payload).encode())


def test_create_sends_cents_and_signs_exactly_the_body() -> None:
    request = messages.build_create(ACCOUNT, _request())
    form = _form(request.body)
    assert request.url == "https://qf.example/trade/v1/payment"
    assert form == {"pay_type": "800213", "sub_openid": "oOPENID", "txamt": "12345",
                    "txcurrcd": "HKD", "out_trade_no": "MGorder0001",
                    "txdtm": "2026-03-01 12:05:06", "expired_time": "30",
                    "goods_name": "Milk tea x2"}
    assert "mchid" not in form  # direct merchant: mchid must not be sent
    assert request.headers["X-QF-APPCODE"] == "APPCODE1"
    assert request.headers["X-QF-SIGNTYPE"] == "MD5"
    assert request.headers["X-QF-SIGN"] == signing.sign(form, "client-key-1")


def test_mchid_and_sha256_when_configured() -> None:
    account = QfpayAccount("APPCODE1", "client-key-1", "https://qf.example", mchid="MCH9",
                           sign_type="SHA256")
    request = messages.build_create(account, _request())
    form = _form(request.body)
    assert form["mchid"] == "MCH9"
    assert request.headers["X-QF-SIGNTYPE"] == "SHA256"
    assert request.headers["X-QF-SIGN"] == signing.sign(form, "client-key-1", "SHA256")
    assert len(request.headers["X-QF-SIGN"]) == 64


@pytest.mark.parametrize(("minutes", "expected"), [(1, 5), (5, 5), (29.9, 29), (30, 30),
                                                    (120, 120), (600, 120)])
def test_expired_time_is_clamped(minutes: float, expected: int) -> None:
    form = _form(messages.build_create(ACCOUNT, _request(minutes)).body)
    assert form["expired_time"] == str(expected)


def test_create_needs_openid() -> None:
    with pytest.raises(ValueError):
        messages.build_create(ACCOUNT, _request(openid=None))


PAY_PARAMS = {"appId": "wxAPP", "timeStamp": "1593746074", "nonceStr": "n1",
              "package": "prepay_id=wx1", "signType": "MD5", "paySign": "SIGN"}


def test_parse_create_success_keeps_wallet_params() -> None:
    created = messages.parse_create(_request(), _response(
        {"respcd": "0000", "out_trade_no": "MGorder0001", "syssn": "S1", "pay_params": PAY_PARAMS}))
    assert created.wechat == PAY_PARAMS
    assert created.provider_txn_id == "S1"


@pytest.mark.parametrize("code", ["1143", "1145"])
def test_parse_create_in_progress_is_pending(code: str) -> None:
    created = messages.parse_create(_request(), _response(
        {"respcd": code, "syssn": "S1", "pay_params": PAY_PARAMS}))
    assert created.status is ProviderPaymentStatus.PENDING and created.wechat is not None
    with pytest.raises(ProviderError) as err:  # nothing to pay with yet
        messages.parse_create(_request(), _response({"respcd": code}))
    assert err.value.retryable and err.value.provider_code == code


@pytest.mark.parametrize(("code", "words"), [("1108", "signature"), ("1181", "expired"),
                                             ("1268", "does not exist"), ("1297", "")])
def test_parse_create_failures_keep_the_code(code: str, words: str) -> None:
    with pytest.raises(ProviderError) as err:
        messages.parse_create(_request(), _response({"respcd": code, "respmsg": ""}))
    assert err.value.provider_code == code and words in err.value.message
    assert err.value.retryable is (code == "1297")


def test_parse_accepts_the_nested_data_variant() -> None:
    created = messages.parse_create(_request(), _response(
        {"respcd": "0000", "data": {"syssn": "S9", "pay_params": PAY_PARAMS}}))
    assert created.provider_txn_id == "S9"


def _notification(body: bytes, sign: str | None, key: str = NOTIFY["client_key"]) -> Any:
    account = QfpayAccount("A", key)
    headers = {"x-qf-sign": sign} if sign is not None else {}
    return messages.verify_notification(
        account, IncomingNotification(headers, body, CREATED))


def test_notification_verified_on_raw_bytes() -> None:
    verified = _notification(NOTIFY["raw_body"].encode(), NOTIFY["X-QF-SIGN"].lower())
    assert verified.event_key == "payment:20200615000200020000641807"
    assert verified.trusted
    assert verified.payment is not None
    assert verified.payment.status is ProviderPaymentStatus.PAID
    assert verified.payment.amount == Money(10, "HKD")
    assert verified.payment.provider_order_no == "9G3ZIWTG1R3IVSC2AH2O5EGKJQ7I72QO"


def test_same_json_with_other_spacing_fails() -> None:
    compact = json.dumps(json.loads(NOTIFY["raw_body"]), separators=(",", ":")).encode()
    assert json.loads(compact) == json.loads(NOTIFY["raw_body"])
    with pytest.raises(NotificationRejected):
        _notification(compact, NOTIFY["X-QF-SIGN"])


@pytest.mark.parametrize("sign", [None, "", "F754BE8B79819EA2188B69329D5D4096"])
def test_forged_or_missing_signature_fails(sign: str | None) -> None:
    with pytest.raises(NotificationRejected):
        _notification(NOTIFY["raw_body"].encode(), sign)


def test_wrong_key_fails() -> None:
    with pytest.raises(NotificationRejected):
        _notification(NOTIFY["raw_body"].encode(), NOTIFY["X-QF-SIGN"], key="other")


def test_refund_notification_maps_to_refund_state() -> None:
    body = json.dumps({"notify_type": "refund", "syssn": "R1", "out_trade_no": "RFmine",
                       "txamt": "500", "txcurrcd": "HKD", "respcd": "0000",
                       "status": "1"}).encode()
    verified = _notification(body, signing.notification_signature(body, NOTIFY["client_key"]))
    assert verified.event_key == "refund:R1" and verified.payment is None
    assert verified.refund is not None
    assert verified.refund.provider_refund_no == "RFmine"
    assert verified.refund.status is ProviderRefundStatus.SUCCEEDED
    assert verified.refund.amount == Money(500, "HKD")


@pytest.mark.parametrize("txamt", ["1.5", "-1", " 10", "1e3", 10.0, True])
def test_notification_amount_must_be_integer_cents(txamt: object) -> None:
    payload = json.loads(NOTIFY["raw_body"]) | {"txamt": txamt}
    body = json.dumps(payload).encode()
    verified = _notification(body, signing.notification_signature(body, NOTIFY["client_key"]))
    assert verified.payment is not None and verified.payment.amount is None


REF = PaymentRef("MGorder0001", Money(12345, "HKD"), CREATED, "S1")


def _query(item: dict[str, Any]) -> HttpResponse:
    base = {"out_trade_no": "MGorder0001", "order_type": "payment", "txamt": "12345",
            "txcurrcd": "HKD", "syssn": "S1"}
    return _response({"respcd": "0000", "data": [base | item]})


@pytest.mark.parametrize(("item", "status"), [
    ({"respcd": "0000", "cancel": "0"}, ProviderPaymentStatus.PAID),
    ({"respcd": "0000", "cancel": "5"}, ProviderPaymentStatus.REFUNDED),
    ({"respcd": "0000", "cancel": "2"}, ProviderPaymentStatus.CLOSED),
    ({"respcd": "0000", "cancel": "9"}, ProviderPaymentStatus.UNKNOWN),
    ({"respcd": "1143"}, ProviderPaymentStatus.PENDING),
    ({"respcd": "1145"}, ProviderPaymentStatus.PENDING),
    ({"respcd": "1181"}, ProviderPaymentStatus.CLOSED),
    ({"respcd": "1205"}, ProviderPaymentStatus.FAILED),
    ({"respcd": ""}, ProviderPaymentStatus.UNKNOWN),
])
def test_query_statuses(item: dict[str, Any], status: ProviderPaymentStatus) -> None:
    state = messages.parse_query(REF, _query(item))
    assert state.status is status
    assert state.amount == Money(12345, "HKD")


def test_query_without_the_order_is_not_found() -> None:
    assert messages.parse_query(REF, _response({"respcd": "0000", "data": []})).status \
        is ProviderPaymentStatus.NOT_FOUND
    assert messages.parse_query(REF, _query({"out_trade_no": "other", "respcd": "0000"})).status \
        is ProviderPaymentStatus.NOT_FOUND


REFUND = RefundRequest(REF, "RFmine", Money(500, "HKD"), requested_at=CREATED)


def test_refund_request_fields() -> None:
    form = _form(messages.build_refund(ACCOUNT, REFUND).body)
    assert form == {"syssn": "S1", "out_trade_no": "RFmine", "txamt": "500",
                    "txdtm": "2026-03-01 12:05:06"}


@pytest.mark.parametrize(("payload", "status"), [
    ({"respcd": "0000", "syssn": "R1"}, ProviderRefundStatus.SUCCEEDED),
    ({"respcd": "1145"}, ProviderRefundStatus.PENDING),
    ({"respcd": "1272"}, ProviderRefundStatus.FAILED),
    ({"respcd": "1269"}, ProviderRefundStatus.FAILED),
    ({"respcd": "1297"}, ProviderRefundStatus.UNKNOWN),
])
def test_refund_answers(payload: dict[str, Any], status: ProviderRefundStatus) -> None:
    assert messages.parse_refund(REFUND, _response(payload)).status is status


def test_refund_5xx_is_unknown() -> None:
    state = messages.parse_refund(REFUND, HttpResponse(502, {}, b"bad gateway"))
    assert state.status is ProviderRefundStatus.UNKNOWN


def test_ack_format() -> None:
    assert messages.ack(True) == (200, b"SUCCESS")
    assert messages.ack(False)[0] != 200
