"""Latipay: HMAC-SHA256 request signature; form notification with an HMAC result signature."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from bench.providers.base import (
    Notification,
    ProviderBench,
    bench_number,
    psp_pay_sign,
    seed_number,
)
from minigate.providers.latipay import signing
from minigate.sandbox import credentials as cred

AMOUNT, MINOR = "12.30", 1230


def notification(number: str) -> Notification:
    currency, method, status = cred.LATIPAY_CURRENCY, "wechat", "paid"
    fields = {
        "merchant_reference": number, "order_id": "2026" + number[-12:], "currency": currency,
        "amount": AMOUNT, "payment_method": method, "status": status,
        "pay_time": "2026-11-22 03:00:00",
        "signature": signing.result_signature(cred.LATIPAY_API_KEY, number, method, status,
                                              currency, AMOUNT),
    }
    return Notification({"Content-Type": "application/x-www-form-urlencoded"},
                        urlencode(fields).encode())


def bare_verify(headers: Mapping[str, str], body: bytes) -> str | None:
    form = dict(parse_qsl(body.decode()))
    expected = signing.result_signature(
        cred.LATIPAY_API_KEY, form.get("merchant_reference", ""), form.get("payment_method", ""),
        form.get("status", ""), form.get("currency", ""), form.get("amount", ""))
    if not hmac.compare_digest(expected, form.get("signature", "")):
        return None
    return f"{form['merchant_reference']}:{form['status']}"


async def bare_create(http: httpx.AsyncClient, sim: str, openid: str,
                      minor: int) -> dict[str, Any]:
    number = bench_number()
    params = {
        "user_id": cred.LATIPAY_USER_ID, "wallet_id": cred.LATIPAY_WALLET_ID,
        "amount": f"{minor // 100}.{minor % 100:02d}", "notify_url": "http://127.0.0.1:9/bare",
        "merchant_reference": number, "app_id": cred.MINI_APP_ID, "open_id": openid,
        "product_name": "bench",
    }
    params["signature"] = signing.sign_request(params, cred.LATIPAY_API_KEY)
    r = await http.post(f"{sim}/latipay/v2/miniapppay", content=json.dumps(params),
                        headers={"Content-Type": "application/json"})
    data: dict[str, Any] = r.json()
    if data.get("code") != 0:
        raise RuntimeError(f"miniapppay: {data}")
    return {"number": number, "payment": data["payment"]}


_CHECKOUT_PARAMS = {
    "user_id": cred.LATIPAY_USER_ID, "wallet_id": cred.LATIPAY_WALLET_ID, "amount": AMOUNT,
    "notify_url": "http://127.0.0.1:8000/v1/notify/latipay",
    "merchant_reference": "MG" + "x" * 26, "app_id": cred.MINI_APP_ID,
    "open_id": "o" + "y" * 27, "product_name": "bench",
}


def crypto_checkout() -> object:
    # minigate signs the miniapppay request (the answer carries no signature).
    return signing.sign_request(_CHECKOUT_PARAMS, cred.LATIPAY_API_KEY)


def crypto_checkout_sim() -> object:
    # the simulator verifies the request (same HMAC again) and signs the paySign (MD5, v2).
    sig = signing.sign_request(_CHECKOUT_PARAMS, cred.LATIPAY_API_KEY)
    signing.signatures_match(sig, sig)
    return psp_pay_sign()


def crypto_notification() -> object:
    expected = signing.result_signature(cred.LATIPAY_API_KEY, "MG" + "x" * 26, "wechat", "paid",
                                        "NZD", AMOUNT)
    return signing.signatures_match(expected, expected)


LATIPAY = ProviderBench(
    name="latipay", channel="wechat", currency=cred.LATIPAY_CURRENCY, amount=AMOUNT,
    amount_minor=MINOR, seed_number=seed_number, ack=(200, b"sent", "text/plain"),
    bare_create=bare_create, crypto_checkout=crypto_checkout,
    floor_checkout="HMAC-SHA256 miniapppay request signature",
    crypto_checkout_sim=crypto_checkout_sim, notification=notification,
    bare_verify=bare_verify, crypto_notification=crypto_notification,
    floor_notification="HMAC-SHA256 result signature, constant-time compare",
)
