"""The CBTIS simulator: tokens with a TTL, idempotent ids, signed webhooks with retries."""

from __future__ import annotations

import json
from typing import Any

import httpx

from minigate.providers.cbtis import assumptions as A
from minigate.providers.cbtis import signing
from minigate.sandbox import credentials as cred
from tests.support import Harness

BASE = "/sandbox/cbtis"


async def _token(h: Harness) -> str:
    r = await h.api.post(BASE + A.LOGIN_PATH, headers={
        "x-client-id": cred.CBTIS_CLIENT_ID, "x-api-key": cred.CBTIS_API_KEY})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


async def _call(h: Harness, path: str, body: dict[str, Any], token: str) -> httpx.Response:
    return await h.api.post(BASE + path, json=body, headers={"Authorization": f"Bearer {token}"})


async def _create_body(h: Harness, **overrides: Any) -> dict[str, Any]:
    await h.login_code("carol")
    body = {"amount": "12.30", "currency": "HKD", "merchant_order_id": "MG-1",
            "description": "tea", "notify_url": "http://merchant.test/hook",
            "payment_method": {"type": "wechat", "wechat": {
                "flow": "mini_program", "sub_appid": cred.MINI_APP_ID,
                "sub_openid": h.world.login.openid_for(cred.MINI_APP_ID, "carol")}}}
    body.update(overrides)
    return body


async def test_login_and_token_ttl(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    bad = await h.api.post(BASE + A.LOGIN_PATH, headers={
        "x-client-id": cred.CBTIS_CLIENT_ID, "x-api-key": "wrong"})
    assert bad.status_code == 401
    await h.api.post(BASE + "/control", json={"token_ttl_seconds": 0})
    token = await _token(h)
    r = await _call(h, A.QUERY_PATH, {"merchant_order_id": "x"}, token)
    assert r.status_code == 401  # expired at once
    await h.api.post(BASE + "/control", json={"token_ttl_seconds": 600})
    r = await _call(h, A.QUERY_PATH, {"merchant_order_id": "x"}, await _token(h))
    assert r.status_code == 200 and r.json()["code"] == 404


async def test_create_is_idempotent_and_validated(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    token = await _token(h)
    body = await _create_body(h)
    first = (await _call(h, A.CREATE_PATH, body, token)).json()
    assert first["code"] == 0 and first["data"]["next_action"]["type"] == "call_sdk"
    assert (await _call(h, A.CREATE_PATH, body, token)).json()["data"] == first["data"]
    assert (await _call(h, A.CREATE_PATH, {**body, "amount": "1.00"}, token)).json()["code"] == 409
    for bad in ({"amount": "12.345"}, {"amount": 12.3}, {"currency": "NZD"},
                {"merchant_order_id": "M" * 33}):
        answer = (await _call(h, A.CREATE_PATH, {**body, **bad, "merchant_order_id":
                                                 bad.get("merchant_order_id", "MG-2")}, token))
        assert answer.json()["code"] == 400, bad


async def test_webhook_retries_are_resigned(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    seen: list[httpx.Request] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200 if len(seen) > 1 else 500)

    h.network.routes["merchant.test"] = httpx.MockTransport(receiver)
    token = await _token(h)
    created = (await _call(h, A.CREATE_PATH, await _create_body(h), token)).json()["data"]
    paid = await h.api.post("/sandbox/wallet/requestPayment",
                            json=created["next_action"]["data"])
    assert paid.json() == {"errMsg": "requestPayment:ok"}
    await h.world.notifier.drain()
    assert len(seen) == 2
    for request in seen:
        ts = request.headers["x-timestamp"]
        assert request.headers["x-signature"] == signing.webhook_signature(
            cred.CBTIS_WEBHOOK_SECRET, ts, request.content)
    assert json.loads(seen[0].content)["notify_type"] == "payment_success"
    status = (await _call(h, A.QUERY_PATH, {"order_id": created["order_id"]}, token)).json()
    assert status["data"]["status"] == "SUCCEEDED"
