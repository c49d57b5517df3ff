"""WeChat Pay API v2 (direct): XML, HMAC-SHA256 (the sandbox account's sign type; MD5 is
the other one v2 allows). Checkout = signed ``unifiedorder``, the answer's ``sign`` checked,
``paySign`` with the same algorithm. Notification = XML whose ``sign`` covers every field,
acked with the SUCCESS XML."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from bench.providers.base import Notification, ProviderBench, bench_number, seed_number
from minigate.providers.wechatpay import v2sign
from minigate.providers.wechatpay.xml import XmlRejected, parse_xml, to_xml
from minigate.sandbox import credentials as cred

AMOUNT, MINOR, CURRENCY = "12.30", 1230, "CNY"
SIGN_TYPE = v2sign.HMAC_SHA256
KEY = cred.WECHATPAY_APIV2_KEY
CHINA = timezone(timedelta(hours=8))
ACK = to_xml({"return_code": "SUCCESS", "return_msg": "OK"})


def _signed(fields: dict[str, str]) -> bytes:
    fields["sign"] = v2sign.sign(fields, KEY, SIGN_TYPE)
    return to_xml(fields)


def notification_fields(number: str) -> dict[str, str]:
    """A paid-order notification: appid, mch_id, total_fee and fee_type match the order."""
    return {
        "appid": cred.MINI_APP_ID, "mch_id": cred.WECHATPAY_MCHID,
        "nonce_str": secrets.token_hex(8), "return_code": "SUCCESS", "sign_type": SIGN_TYPE,
        "is_subscribe": "N", "result_code": "SUCCESS", "out_trade_no": number,
        "openid": "o" + "b" * 27, "trade_type": "JSAPI", "total_fee": str(MINOR),
        "fee_type": CURRENCY, "transaction_id": "4200000" + number[-21:], "bank_type": "OTHERS",
        "cash_fee": str(MINOR), "time_end": "20261122110000",
    }


def notification(number: str) -> Notification:
    return Notification({"Content-Type": "text/xml"}, _signed(notification_fields(number)))


def bare_verify(headers: Mapping[str, str], body: bytes) -> str | None:
    try:
        fields = parse_xml(body)
    except XmlRejected:
        return None
    if not v2sign.signatures_match(fields, KEY, fields.get("sign_type") or v2sign.MD5):
        return None
    return fields.get("transaction_id") or None


def _order_fields(number: str, openid: str, minor: int) -> dict[str, str]:
    expires = (datetime.now(CHINA) + timedelta(minutes=30)).strftime("%Y%m%d%H%M%S")
    return {
        "appid": cred.MINI_APP_ID, "mch_id": cred.WECHATPAY_MCHID,
        "nonce_str": secrets.token_hex(16).upper(), "body": "bench", "out_trade_no": number,
        "total_fee": str(minor), "fee_type": CURRENCY, "spbill_create_ip": "127.0.0.1",
        "notify_url": "http://127.0.0.1:9/bare", "trade_type": "JSAPI", "openid": openid,
        "time_expire": expires, "sign_type": SIGN_TYPE,
    }


def pay_params(prepay_id: str) -> dict[str, str]:
    params = v2sign.pay_sign_params(cred.MINI_APP_ID, str(int(datetime.now().timestamp())),
                                    secrets.token_hex(16).upper(), f"prepay_id={prepay_id}",
                                    SIGN_TYPE)
    return {**params, "paySign": v2sign.sign(params, KEY, SIGN_TYPE)}


async def bare_create(http: httpx.AsyncClient, sim: str, openid: str,
                      minor: int) -> dict[str, Any]:
    number = bench_number()
    r = await http.post(f"{sim}/wechatpay/pay/unifiedorder",
                        content=_signed(_order_fields(number, openid, minor)),
                        headers={"Content-Type": "text/xml; charset=utf-8"})
    fields = parse_xml(r.content)
    if not v2sign.signatures_match(fields, KEY, fields.get("sign_type") or SIGN_TYPE):
        raise RuntimeError(f"unifiedorder: answer sign does not verify: {r.text[:100]}")
    if fields.get("result_code") != "SUCCESS":
        raise RuntimeError(f"unifiedorder: {fields}")
    return {"number": number, "payment": pay_params(fields["prepay_id"])}


_ORDER = _order_fields("MG" + "x" * 26, "o" + "y" * 27, MINOR)
_ANSWER = {"return_code": "SUCCESS", "return_msg": "OK", "appid": cred.MINI_APP_ID,
           "mch_id": cred.WECHATPAY_MCHID, "nonce_str": "n" * 16, "result_code": "SUCCESS",
           "trade_type": "JSAPI", "prepay_id": "wx" + "0" * 30}
_PAY = v2sign.pay_sign_params(cred.MINI_APP_ID, "1700000000", "N" * 32,
                              "prepay_id=wx" + "0" * 30, SIGN_TYPE)
_NOTE = notification_fields("MG" + "x" * 26)


def _signed_copy(fields: dict[str, str]) -> dict[str, str]:
    return {**fields, "sign": v2sign.sign(fields, KEY, SIGN_TYPE)}


_ORDER_SIGNED, _ANSWER_SIGNED, _NOTE_SIGNED = (_signed_copy(f) for f in (_ORDER, _ANSWER, _NOTE))


def crypto_checkout() -> object:
    v2sign.sign(_ORDER, KEY, SIGN_TYPE)  # the unifiedorder request
    v2sign.signatures_match(_ANSWER_SIGNED, KEY, SIGN_TYPE)  # the answer's sign
    return v2sign.sign(_PAY, KEY, SIGN_TYPE)  # paySign


def crypto_checkout_sim() -> object:
    v2sign.signatures_match(_ORDER_SIGNED, KEY, SIGN_TYPE)
    return v2sign.sign(_ANSWER, KEY, SIGN_TYPE)


def crypto_notification() -> object:
    return v2sign.signatures_match(_NOTE_SIGNED, KEY, SIGN_TYPE)


WECHATPAY_V2 = ProviderBench(
    name="wechatpay-v2", channel="wechat", currency=CURRENCY, amount=AMOUNT,
    amount_minor=MINOR, seed_number=seed_number, ack=(200, ACK, "text/xml"),
    bare_create=bare_create, crypto_checkout=crypto_checkout,
    floor_checkout="3 HMAC-SHA256 (unifiedorder sign, answer sign check, paySign)",
    crypto_checkout_sim=crypto_checkout_sim, notification=notification,
    bare_verify=bare_verify, crypto_notification=crypto_notification,
    floor_notification="1 HMAC-SHA256 sign check (constant-time)",
)
