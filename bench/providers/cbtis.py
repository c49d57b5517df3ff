"""CBTIS: bearer-token API (login once, token cached), no request signatures.

Checkout only. A CBTIS webhook is only a hint: minigate's connector verifies its HMAC but
returns it with ``trusted=False`` (``providers/cbtis/messages.py``), and
``service/notifications.py`` then only schedules a provider query (outcome
``query_scheduled``); the order is settled by the reconciler's query, never by the webhook.
So a "notification that pays an order" does not exist for CBTIS and is not benchmarked.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from bench.providers.base import ProviderBench, bench_number, psp_pay_sign, seed_number
from minigate.providers.cbtis import assumptions as A
from minigate.sandbox import credentials as cred

AMOUNT, MINOR = "12.30", 1230
_token: dict[str, Any] = {}  # this process's cached access token (as minigate caches it)


async def _access_token(http: httpx.AsyncClient, sim: str) -> str:
    if _token.get("expires", 0) > time.monotonic():
        return str(_token["token"])
    r = await http.post(f"{sim}/cbtis{A.LOGIN_PATH}", content=b"{}", headers={
        "Content-Type": "application/json", A.CLIENT_ID_HEADER: cred.CBTIS_CLIENT_ID,
        A.API_KEY_HEADER: cred.CBTIS_API_KEY})
    _token.update(token=r.json()["token"], expires=time.monotonic() + 25 * 60)
    return str(_token["token"])


async def bare_create(http: httpx.AsyncClient, sim: str, openid: str,
                      minor: int) -> dict[str, Any]:
    number = bench_number()
    payload = {
        "amount": f"{minor // 100}.{minor % 100:02d}", "currency": cred.CBTIS_CURRENCY,
        "merchant_order_id": number, "description": "bench",
        "notify_url": "http://127.0.0.1:9/bare",
        "payment_method": {"type": "wechat", "wechat": {
            "flow": "mini_program", "sub_appid": cred.MINI_APP_ID, "sub_openid": openid}},
    }
    token = await _access_token(http, sim)
    r = await http.post(f"{sim}/cbtis{A.CREATE_PATH}", headers={
        "Content-Type": "application/json", A.AUTH_HEADER: f"Bearer {token}"},
        content=json.dumps(payload, separators=(",", ":")))
    data: dict[str, Any] = r.json()
    if str(data.get("code")) != "0":
        raise RuntimeError(f"cbtis create: {data}")
    return {"number": number, "payment": data["data"]["next_action"]["data"]}


CBTIS = ProviderBench(
    name="cbtis", channel="wechat", currency=cred.CBTIS_CURRENCY, amount=AMOUNT,
    amount_minor=MINOR, seed_number=seed_number, ack=A.ACK_OK + ("text/plain",),
    bare_create=bare_create,  # no crypto_checkout: minigate signs and verifies nothing
    floor_checkout="none (bearer token; no request or response signature)",
    crypto_checkout_sim=psp_pay_sign,
    no_notification="a CBTIS webhook is only a hint (trusted=False): minigate schedules a "
                    "provider query and the reconciler settles the order, so no notification "
                    "settles an order by itself",
)
