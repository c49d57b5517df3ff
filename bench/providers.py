"""One entry per provider: everything the benchmark needs to drive it.

A provider is one :class:`ProviderBench` in :data:`PROVIDERS`. Checkout is the same three
minigate calls for every provider (only ``channel``/``provider`` change); what differs is
how a correctly signed notification is built, what the provider acks with, the bare
baseline's provider work, and the signature-only cost (the crypto floor).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from minigate.providers.latipay import signing
from minigate.providers.wechatpay import v2sign
from minigate.sandbox import credentials as cred


@dataclass(frozen=True)
class Notification:
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class ProviderBench:
    name: str
    channel: str
    currency: str
    amount: str  # decimal string, as the merchant API takes it
    amount_minor: int
    #: provider_order_no of the i-th seeded pending order (what the provider echoes back).
    seed_number: Callable[[int], str]
    #: a correctly signed "paid" notification for a seeded pending order.
    notification: Callable[[str], Notification]
    #: is this HTTP answer the provider's success ack?
    acked: Callable[[int, bytes], bool]
    #: bare baseline: verify the notification; returns the event key or None (rejected).
    bare_verify: Callable[[Mapping[str, str], bytes], str | None]
    #: bare baseline: the provider call of a checkout (sign, POST to the simulator).
    bare_create: Callable[[httpx.AsyncClient, str, str, int], Awaitable[dict[str, Any]]]
    #: the signatures alone, per operation (timed in-process for the crypto floor).
    crypto_checkout: Callable[[], object]
    crypto_notification: Callable[[], object]


# -- Latipay -------------------------------------------------------------------------------

def _latipay_number(i: int) -> str:
    return f"MGBENCH{i:021d}"  # 28 chars, like minigate.domain.ids.provider_number()


def _latipay_notification(number: str) -> Notification:
    amount, currency, method, status = "12.30", cred.LATIPAY_CURRENCY, "wechat", "paid"
    fields = {
        "merchant_reference": number, "order_id": "2026" + number[-12:], "currency": currency,
        "amount": amount, "payment_method": method, "status": status,
        "pay_time": "2026-11-22 03:00:00",
        "signature": signing.result_signature(cred.LATIPAY_API_KEY, number, method, status,
                                              currency, amount),
    }
    return Notification({"Content-Type": "application/x-www-form-urlencoded"},
                        urlencode(fields).encode())


def _latipay_bare_verify(headers: Mapping[str, str], body: bytes) -> str | None:
    form = dict(parse_qsl(body.decode()))
    expected = signing.result_signature(
        cred.LATIPAY_API_KEY, form.get("merchant_reference", ""), form.get("payment_method", ""),
        form.get("status", ""), form.get("currency", ""), form.get("amount", ""))
    if not hmac.compare_digest(expected, form.get("signature", "")):
        return None
    return f"{form['merchant_reference']}:{form['status']}"


async def _latipay_bare_create(http: httpx.AsyncClient, sim: str, openid: str,
                               minor: int) -> dict[str, Any]:
    number = "MGB" + secrets.token_hex(12)
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
    "user_id": cred.LATIPAY_USER_ID, "wallet_id": cred.LATIPAY_WALLET_ID, "amount": "12.30",
    "notify_url": "http://127.0.0.1:8000/v1/notify/latipay",
    "merchant_reference": "MG" + "x" * 26, "app_id": cred.MINI_APP_ID,
    "open_id": "o" + "y" * 27, "product_name": "bench",
}


def _latipay_crypto_checkout() -> object:
    # minigate signs the miniapppay request; the simulator verifies it (same HMAC again)
    # and signs the WeChat paySign (MD5, v2 rules).
    sig = signing.sign_request(_CHECKOUT_PARAMS, cred.LATIPAY_API_KEY)
    signing.sign_request(_CHECKOUT_PARAMS | {"signature": sig}, cred.LATIPAY_API_KEY)
    return v2sign.sign(v2sign.pay_sign_params(cred.MINI_APP_ID, "1700000000", "n" * 32,
                                              "prepay_id=wx" + "0" * 30, "MD5"), "k" * 32)


def _latipay_crypto_notification() -> object:
    expected = signing.result_signature(cred.LATIPAY_API_KEY, "MG" + "x" * 26, "wechat", "paid",
                                        "NZD", "12.30")
    return signing.signatures_match(expected, expected)


LATIPAY = ProviderBench(
    name="latipay", channel="wechat", currency=cred.LATIPAY_CURRENCY, amount="12.30",
    amount_minor=1230, seed_number=_latipay_number, notification=_latipay_notification,
    acked=lambda status, body: status == 200 and body.strip() == b"sent",
    bare_verify=_latipay_bare_verify, bare_create=_latipay_bare_create,
    crypto_checkout=_latipay_crypto_checkout, crypto_notification=_latipay_crypto_notification,
)

#: QFPay, CBTIS and WeChat Pay v2/v3 add one entry each here.
PROVIDERS: dict[str, ProviderBench] = {p.name: p for p in (LATIPAY,)}
