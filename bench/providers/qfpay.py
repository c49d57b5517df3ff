"""QFPay: MD5 request signature in headers; JSON notification signed with MD5 over the raw
body + client_key (``X-QF-SIGN``), acked ``200 SUCCESS``. Amounts are integer cents (HKD)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.providers.base import (
    Notification,
    ProviderBench,
    bench_number,
    psp_pay_sign,
    seed_number,
)
from minigate.providers.qfpay import signing
from minigate.sandbox import credentials as cred

AMOUNT, MINOR = "12.30", 1230


def _payload(number: str) -> dict[str, str]:
    # Field for field what the simulator sends (sandbox/qfpay.py notification_body).
    stamp = "2026-11-22 11:00:00"
    return {
        "status": "1", "notify_type": "payment", "pay_type": "800213",
        "syssn": "20261122" + number[-12:], "out_trade_no": number, "txamt": str(MINOR),
        "txcurrcd": cred.QFPAY_CURRENCY, "txdtm": stamp, "sysdtm": stamp, "paydtm": stamp,
        "cancel": "0", "respcd": "0000", "goods_name": "bench", "cash_fee": "0",
        "cash_fee_type": "", "chnlsn": "", "chnlsn2": "",
    }


def notification(number: str) -> Notification:
    body = json.dumps(_payload(number)).encode()  # QFPay's spacing is part of what is signed
    sign = signing.notification_signature(body, cred.QFPAY_CLIENT_KEY)
    return Notification({"Content-Type": "application/json", "X-QF-SIGN": sign}, body)


def bare_verify(headers: Mapping[str, str], body: bytes) -> str | None:
    expected = signing.notification_signature(body, cred.QFPAY_CLIENT_KEY)
    sign = next((v for k, v in headers.items() if k.lower() == "x-qf-sign"), None)
    if not signing.signatures_match(expected, sign):
        return None
    data = json.loads(body)
    return f"payment:{data['syssn']}"


def _create_params(number: str, openid: str, minor: int) -> dict[str, str]:
    return {
        "pay_type": "800213", "sub_openid": openid, "txamt": str(minor),
        "txcurrcd": cred.QFPAY_CURRENCY, "out_trade_no": number,
        "txdtm": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"), "expired_time": "30",
        "goods_name": "bench",
    }


async def bare_create(http: httpx.AsyncClient, sim: str, openid: str,
                      minor: int) -> dict[str, Any]:
    number = bench_number()
    params = _create_params(number, openid, minor)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
               "X-QF-APPCODE": cred.QFPAY_APP_CODE,
               "X-QF-SIGN": signing.sign(params, cred.QFPAY_CLIENT_KEY),
               "X-QF-SIGNTYPE": signing.MD5}
    r = await http.post(f"{sim}/qfpay/trade/v1/payment", content=urlencode(params),
                        headers=headers)
    data: dict[str, Any] = r.json()
    if data.get("respcd") != "0000":
        raise RuntimeError(f"qfpay payment: {data}")
    return {"number": number, "payment": data["pay_params"]}


_PARAMS = _create_params("MG" + "x" * 26, "o" + "y" * 27, MINOR)
_BODY = json.dumps(_payload("MG" + "x" * 26)).encode()


def crypto_checkout() -> object:
    # minigate signs the payment request (QFPay's answer carries no signature).
    return signing.sign(_PARAMS, cred.QFPAY_CLIENT_KEY)


def crypto_checkout_sim() -> object:
    expected = signing.sign(_PARAMS, cred.QFPAY_CLIENT_KEY)  # the simulator checks X-QF-SIGN
    signing.signatures_match(expected, expected)
    return psp_pay_sign()


def crypto_notification() -> object:
    expected = signing.notification_signature(_BODY, cred.QFPAY_CLIENT_KEY)
    return signing.signatures_match(expected, expected)


QFPAY = ProviderBench(
    name="qfpay", channel="wechat", currency=cred.QFPAY_CURRENCY, amount=AMOUNT,
    amount_minor=MINOR, seed_number=seed_number, ack=(200, b"SUCCESS", "text/plain"),
    bare_create=bare_create, crypto_checkout=crypto_checkout,
    floor_checkout="MD5 request signature (X-QF-SIGN)", crypto_checkout_sim=crypto_checkout_sim,
    notification=notification, bare_verify=bare_verify, crypto_notification=crypto_notification,
    floor_notification="MD5 over the raw body + client_key, constant-time compare",
)
