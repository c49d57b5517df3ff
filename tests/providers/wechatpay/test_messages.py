"""Status mappings and answer parsing (pure), for both API versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from minigate.domain.money import Money
from minigate.errors import NotificationRejected, ProviderError
from minigate.providers.base import (
    Channel,
    HttpResponse,
    PaymentRef,
    PaymentRequest,
    ProviderPaymentStatus,
    ProviderRefundStatus,
    RefundRequest,
)
from minigate.providers.wechatpay import v2_messages as v2
from minigate.providers.wechatpay import v2sign
from minigate.providers.wechatpay import v3_messages as v3
from minigate.providers.wechatpay.xml import parse_xml, to_xml
from tests.providers.wechatpay.vectors import vectors

P, R = ProviderPaymentStatus, ProviderRefundStatus
REF = PaymentRef("T20260101000001", Money(1230, "CNY"), datetime(2026, 1, 1, tzinfo=UTC))
V2 = v2.V2Account("1900009999", "wxapp", "k" * 32, "HMAC-SHA256")


@pytest.mark.parametrize(("state", "expected"), [
    ("SUCCESS", P.PAID), ("REFUND", P.REFUNDED), ("NOTPAY", P.PENDING),
    ("USERPAYING", P.PENDING), ("CLOSED", P.CLOSED), ("REVOKED", P.CLOSED),
    ("PAYERROR", P.FAILED), ("SOMETHING_NEW", P.UNKNOWN), ("", P.UNKNOWN),
])
def test_v3_trade_states(state: str, expected: ProviderPaymentStatus) -> None:
    data = {"out_trade_no": REF.provider_order_no, "trade_state": state,
            "amount": {"total": 1230, "currency": "CNY"}, "appid": "wxapp", "mchid": "1"}
    result = v3.parse_query(REF, HttpResponse(200, {}, json.dumps(data).encode()))
    assert result.status is expected
    assert result.amount == Money(1230, "CNY") and result.app_id == "wxapp"


def test_v3_float_amount_is_never_money() -> None:
    data = {"out_trade_no": REF.provider_order_no, "trade_state": "SUCCESS",
            "amount": {"total": 12.3, "currency": "CNY"}}
    assert v3.transaction_state(data).amount is None


@pytest.mark.parametrize(("status", "expected"), [
    ("SUCCESS", R.SUCCEEDED), ("CLOSED", R.FAILED), ("PROCESSING", R.PENDING),
    ("ABNORMAL", R.PENDING), ("WHATEVER", R.UNKNOWN),
])
def test_v3_refund_states(status: str, expected: ProviderRefundStatus) -> None:
    assert v3.refund_state({"out_refund_no": "RF1", "status": status}).status is expected


def test_v3_query_not_found_and_errors() -> None:
    body = b'{"code":"ORDER_NOT_EXIST","message":"x"}'
    assert v3.parse_query(REF, HttpResponse(404, {}, body)).status is P.NOT_FOUND
    with pytest.raises(ProviderError) as exc:
        v3.parse_query(REF, HttpResponse(500, {}, b'{"code":"SYSTEM_ERROR"}'))
    assert exc.value.retryable
    with pytest.raises(ProviderError) as exc:
        v3.parse_query(REF, HttpResponse(401, {}, b'{"code":"SIGN_ERROR","message":"x"}'))
    assert exc.value.provider_code == "SIGN_ERROR" and not exc.value.retryable


def test_v3_refund_refusal_is_a_failed_refund() -> None:
    req = RefundRequest(REF, "RF1", Money(100, "CNY"))
    state = v3.parse_refund(req, HttpResponse(403, {}, b'{"code":"NOT_ENOUGH","message":"x"}'))
    assert state.status is R.FAILED and "NOT_ENOUGH" in state.detail


def test_v3_ack() -> None:
    assert v3.ack(True) == (204, b"")
    status, body = v3.ack(False, "bad")
    assert status == 400 and json.loads(body) == {"code": "FAIL", "message": "bad"}


def signed_v2(fields: dict[str, str]) -> HttpResponse:
    full = {"return_code": "SUCCESS", "sign_type": "HMAC-SHA256", **fields}
    full["sign"] = v2sign.sign(full, V2.api_key, "HMAC-SHA256")
    return HttpResponse(200, {}, to_xml(full))


def test_v2_orderquery_paid_only_when_all_three_success() -> None:
    base = {"out_trade_no": REF.provider_order_no, "total_fee": "1230", "fee_type": "CNY"}
    paid = v2.parse_orderquery(V2, REF, signed_v2({**base, "result_code": "SUCCESS",
                                                    "trade_state": "SUCCESS"}))
    assert paid.status is P.PAID and paid.amount == Money(1230, "CNY")
    pending = v2.parse_orderquery(V2, REF, signed_v2({**base, "result_code": "SUCCESS",
                                                       "trade_state": "NOTPAY"}))
    assert pending.status is P.PENDING
    with pytest.raises(ProviderError):
        v2.parse_orderquery(V2, REF, signed_v2({**base, "result_code": "FAIL",
                                                 "err_code": "SYSTEMERROR",
                                                 "trade_state": "SUCCESS"}))
    missing = v2.parse_orderquery(V2, REF, signed_v2({"result_code": "FAIL",
                                                       "err_code": "ORDERNOTEXIST"}))
    assert missing.status is P.NOT_FOUND


def test_v2_answer_with_bad_sign_is_refused() -> None:
    good = signed_v2({"out_trade_no": REF.provider_order_no, "result_code": "SUCCESS",
                      "trade_state": "SUCCESS", "total_fee": "1230"})
    forged = HttpResponse(200, {}, good.body.replace(b"1230", b"1"))
    with pytest.raises(ProviderError, match="sign"):
        v2.parse_orderquery(V2, REF, forged)


def test_v2_client_params_use_the_order_sign_type() -> None:
    params = v2.client_params(V2, "wx123", 1700000000, "nonce")
    assert params["signType"] == "HMAC-SHA256" and params["package"] == "prepay_id=wx123"
    signed = {k: v for k, v in params.items() if k != "paySign"}
    assert v2sign.verify({**signed, "sign": params["paySign"]}, V2.api_key, "HMAC-SHA256")


def _order(description: str) -> PaymentRequest:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return PaymentRequest("T20260101000002", Money(100, "CNY"), Channel.WECHAT, description,
                          "https://m.example/n", moment, moment, openid="o-1")


@pytest.mark.parametrize(("description", "sent"), [
    ("公仔" * 63 + "ab", "公仔" * 21),  # 128 characters, 380 bytes: 42 characters, 126 bytes
    ("ab" + "深圳" * 30, "ab" + "深圳" * 20 + "深"),  # a split character is dropped, whole
    ("a" * 127, "a" * 127),
])
def test_description_is_at_most_127_bytes_of_utf8(description: str, sent: str) -> None:
    """WeChat bounds v3's ``description`` and v2's ``body`` as string(127) without saying
    whether it counts characters or bytes: minigate sends at most 127 bytes, whole
    characters, which is within both readings."""
    from tests.providers.wechatpay.vectors import wechat_test_key

    v3_account = v3.V3Account("1900009999", "wxapp", "k" * 32, wechat_test_key(), "SERIAL")
    v3_sent = json.loads(v3.build_create(v3_account, _order(description), 1, "n").body)
    v2_sent = parse_xml(v2.build_unifiedorder(V2, _order(description), "n").body)
    assert v3_sent["description"] == v2_sent["body"] == sent
    assert len(sent.encode()) <= 127


def test_v2_refund_request_carries_the_client_certificate() -> None:
    from minigate.providers.base import ClientCertificate

    cert = ClientCertificate("/etc/minigate/apiclient_cert.pem", "/etc/minigate/key.pem")
    account = v2.V2Account("1", "wxapp", "k" * 32, client_cert=cert)
    request = v2.build_refund(account, RefundRequest(REF, "RF1", Money(100, "CNY")), "n")
    assert request.client_cert == cert and request.url.endswith("/secapi/pay/refund")
    assert v2.build_orderquery(account, REF, "n").client_cert is None


def test_v2_ack_bodies() -> None:
    assert v2.ack(True) == (200, b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
                                 b"<return_msg><![CDATA[OK]]></return_msg></xml>")
    status, body = v2.ack(False, "sign")
    assert status == 400 and b"<return_code><![CDATA[FAIL]]></return_code>" in body


def test_v2_md5_notification_for_an_hmac_account_is_accepted() -> None:
    """WeChat sometimes MD5-signs notifications of HMAC-SHA256 orders: its own sign_type
    decides; a sign_type we do not know never verifies."""
    fields = {"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": V2.appid,
              "mch_id": V2.mchid, "out_trade_no": REF.provider_order_no,
              "transaction_id": "4200000001", "total_fee": "1230", "fee_type": "CNY",
              "nonce_str": "n", "sign_type": "MD5"}
    signed = {**fields, "sign": v2sign.sign(fields, V2.api_key, "MD5")}
    assert V2.sign_type == "HMAC-SHA256"
    verified = v2.verify_notification(V2, to_xml(signed))
    assert verified.payment is not None and verified.payment.status is P.PAID
    with pytest.raises(NotificationRejected):
        v2.verify_notification(V2, to_xml({**signed, "sign_type": "SHA1"}))


def test_v2_signed_failure_notification_is_only_a_hint() -> None:
    """result_code FAIL carries no transaction_id: acked (or WeChat re-sends it for a day),
    never a transition, and the payment is queried; unsigned, it is refused as always."""
    fields = {"return_code": "SUCCESS", "result_code": "FAIL", "err_code": "PAYERROR",
              "appid": V2.appid, "mch_id": V2.mchid, "out_trade_no": REF.provider_order_no,
              "nonce_str": "n1", "sign_type": "MD5"}
    signed = {**fields, "sign": v2sign.sign(fields, V2.api_key, "MD5")}
    verified = v2.verify_notification(V2, to_xml(signed))
    assert verified.trusted is False and verified.payment is not None
    assert verified.payment.provider_order_no == REF.provider_order_no
    assert verified.payment.status is not P.PAID
    with pytest.raises(NotificationRejected):
        v2.verify_notification(V2, to_xml({**signed, "sign": "0" * 32}))


def test_v2_refund_notification_from_the_req_info_vector() -> None:
    v = vectors()["v2_refund_reqinfo_selfgenerated"]
    account = v2.V2Account("1900009999", "wxapp", v["api_key"])
    body = to_xml({"return_code": "SUCCESS", "appid": "wxapp", "mch_id": "1900009999",
                   "nonce_str": "n", "req_info": v["req_info"]})
    verified = v2.verify_notification(account, body)
    assert verified.refund is not None
    assert verified.refund.status is R.SUCCEEDED
    assert verified.refund.provider_refund_no == "131811191610442717309"
    assert verified.refund.amount == Money(3960, "CNY")
    with pytest.raises(NotificationRejected, match="decrypt"):
        v2.verify_notification(v2.V2Account("1900009999", "wxapp", "0" * 32), body)
    with pytest.raises(NotificationRejected, match="another merchant"):
        v2.verify_notification(v2.V2Account("1900000001", "wxapp", v["api_key"]), body)


@pytest.mark.parametrize(("event", "status", "expected"), [
    ("REFUND.SUCCESS", "SUCCESS", R.SUCCEEDED), ("REFUND.ABNORMAL", "ABNORMAL", R.PENDING),
    ("REFUND.CLOSED", "CLOSED", R.FAILED),
])
def test_v3_refund_notifications(event: str, status: str,
                                 expected: ProviderRefundStatus) -> None:
    from minigate.providers.wechatpay import v3sign
    from tests.providers.wechatpay.vectors import wechat_test_key

    key = "0123456789abcdef0123456789abcdef"
    account = v3.V3Account("1900007291", "wxd678efh567hg6787", key, wechat_test_key(), "AB")
    resource = {"mchid": "1900007291", "out_trade_no": REF.provider_order_no,
                "out_refund_no": "RF1", "refund_id": "50300", "refund_status": status,
                "amount": {"total": 1230, "refund": 1000, "payer_total": 1230,
                           "payer_refund": 1000}}
    body = json.dumps({"id": "EV-9", "event_type": event, "resource": {
        "original_type": "refund", "algorithm": "AEAD_AES_256_GCM", "nonce": "abcdefghijkl",
        "associated_data": "refund", "ciphertext": v3sign.aes_gcm_encrypt(
            key, "abcdefghijkl", "refund", json.dumps(resource).encode())}}).encode()
    verified = v3.parse_notification(account, body)
    assert verified.refund is not None and verified.payment is None
    assert verified.refund.status is expected
    assert verified.refund.amount == Money(1000, "CNY")
    assert verified.refund.provider_refund_no == "RF1"
