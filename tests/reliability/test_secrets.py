"""Secrets never appear in logs, error bodies or events: flows run with canary values."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from minigate.sandbox import credentials as cred
from minigate.store.models import Event
from tests.reliability.conftest import WEBHOOK_SECRET, Rig
from tests.support import API_KEY


async def test_no_secret_leaks(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gw = rig.gw
    bodies: list[str] = []
    order = await gw.create_order(amount="10.00")
    code = await gw.login_code()
    r = await gw.api.post(f"/v1/client/orders/{order['id']}/pay",
                          json={"client_token": order["client_token"], "login_code": code})
    bodies.append(r.text)
    await gw.shopper_pays(r.json())
    await gw.wait_status(order["id"], "paid")
    r = await gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "1.00"},
                          headers=gw.merchant())
    bodies.append(r.text)
    # Error paths: wrong key, reused login code, forged notification, bad input.
    for response in (
        await gw.api.get("/v1/orders", headers={"Authorization": "Bearer " + API_KEY[:-1]}),
        await gw.api.post(f"/v1/client/orders/{order['id']}/pay",
                          json={"client_token": order["client_token"], "login_code": code}),
        await gw.api.post("/v1/notify/latipay", content=b"merchant_reference=x&signature=y"),
        await gw.api.post("/v1/orders", json={"amount": 1}, headers=gw.merchant()),
    ):
        bodies.append(response.text)
    # A WeChat Pay v3 flow too: its private key and APIv3 key sign and decrypt everything.
    wx = await gw.create_order(provider="wechatpay", currency="CNY", amount="8.80")
    wx_pay = await gw.api.post(f"/v1/client/orders/{wx['id']}/pay",
                               json={"client_token": wx["client_token"],
                                     "login_code": await gw.login_code()})
    bodies.append(wx_pay.text)
    await gw.shopper_pays(wx_pay.json())
    await gw.wait_status(wx["id"], "paid")
    r = await gw.api.post(f"/v1/orders/{wx['id']}/refunds", json={}, headers=gw.merchant())
    bodies.append(r.text)
    await rig.run_jobs(seconds=120)
    bodies.append((await gw.api.get("/v1/events", headers=gw.merchant())).text)
    bodies.append(json.dumps(await gw.get_order(order["id"])))
    async with gw.ctx.sessions() as session:
        events = (await session.execute(select(Event))).scalars().all()
    stored = json.dumps([e.data for e in events])
    webhooks = b"".join(body for _, body in rig.merchant.received).decode()
    assert rig.merchant.received, "the flow should have delivered webhooks"

    session_keys = [s for s in _session_keys(gw)]
    assert len(session_keys) >= 2, "the login simulator should have issued session keys"
    wechat = gw.ctx.settings.wechatpay
    pem_lines = wechat.private_key.get_secret_value().strip().splitlines()[1:-1]
    assert pem_lines, "the sandbox WeChat Pay private key should be inline"
    canaries = [API_KEY, cred.LATIPAY_API_KEY, cred.MINI_APP_SECRET, WEBHOOK_SECRET,
                wechat.apiv3_key.get_secret_value(), *pem_lines, *session_keys]
    haystacks = {"logs": caplog.text, "responses": "\n".join(bodies), "events": stored,
                 "webhooks": webhooks}
    for where, text in haystacks.items():
        for canary in canaries:
            assert canary not in text, f"a secret leaked into {where}"
    assert repr(gw.ctx.settings).count(cred.LATIPAY_API_KEY) == 0


def _session_keys(gw: object) -> list[str]:
    sim = gw.world.login  # type: ignore[attr-defined]
    return list(getattr(sim, "issued_session_keys", []))
