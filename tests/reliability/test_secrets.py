"""Secrets never appear in logs, error bodies or events: flows run with canary values."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from minigate.logs import make_handler
from minigate.sandbox import credentials as cred
from minigate.store.models import Event
from tests.conftest import _drop_pg, _pg_database
from tests.ops.process import free_port, start, stop, wait_ready
from tests.reliability.conftest import WEBHOOK_SECRET, Rig
from tests.support import API_KEY


async def test_no_secret_leaks(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rendered = io.StringIO()  # the lines as the configured handler writes them (JSON)
    handler = make_handler("json", rendered)
    logging.getLogger().addHandler(handler)
    try:
        await _flows(rig, caplog, rendered)
    finally:
        logging.getLogger().removeHandler(handler)


async def _flows(rig: Rig, caplog: pytest.LogCaptureFixture, rendered: io.StringIO) -> None:
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
    assert rendered.getvalue(), "the handler should have written lines"
    canaries += [order["client_token"], wx["client_token"]]
    haystacks = {"logs": caplog.text, "log lines": rendered.getvalue(),
                 "responses": "\n".join(bodies), "events": stored, "webhooks": webhooks}
    for where, text in haystacks.items():
        for canary in canaries:
            assert canary not in text, f"a secret leaked into {where}"
    assert repr(gw.ctx.settings).count(cred.LATIPAY_API_KEY) == 0


def _session_keys(gw: object) -> list[str]:
    sim = gw.world.login  # type: ignore[attr-defined]
    return list(getattr(sim, "issued_session_keys", []))


# -- a real process: its output and its start banner ----------------------------------
# `minigate serve` as a newcomer starts it: mode "auto", no MINIGATE_API_KEY (the merchant
# key is generated and must work), a loopback webhook URL (allowed in the sandbox), JSON
# logs at DEBUG, and canary secrets that must appear nowhere in what the process prints.

DB_PASSWORD = "pw_canary_5f1e"
PROCESS_WEBHOOK_SECRET = "whsec_canary_91ad"
METRICS_TOKEN = "mt_canary_c0de"


@pytest.fixture
async def url_with_password() -> AsyncIterator[str]:
    """A PostgreSQL database whose URL carries a password (the test server trusts local
    users, so any password connects, and the banner must still hide it)."""
    name, url = await _pg_database()
    try:
        yield url.replace("postgres@", f"postgres:{DB_PASSWORD}@")
    finally:
        await _drop_pg(name)


@pytest.mark.postgres
def test_first_serve_banner_logs_and_request_ids(url_with_password: str,
                                                 tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, "serve", "--port", str(port),
                 MINIGATE_DATABASE_URL=url_with_password, MINIGATE_LOG_LEVEL="debug",
                 MINIGATE_LOG_FORMAT="json", MINIGATE_WEBHOOK_URL=f"{base}/no-such-hook",
                 MINIGATE_WEBHOOK_SECRETS=json.dumps([PROCESS_WEBHOOK_SECRET]),
                 MINIGATE_METRICS_TOKEN=METRICS_TOKEN, MINIGATE_SANDBOX__TIME_SCALE="0.01")
    tokens: list[str] = []
    try:
        wait_ready(base, proc)
        with httpx.Client(base_url=base, timeout=10) as http:
            ready = http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["schema"]["ok"] is True
            # The banner came before the server answered.
            banner = _read_banner(proc)
            key = re.search(r"merchant API key : (sk_sandbox_\S+)", banner)
            assert key, banner
            auth = {"Authorization": f"Bearer {key.group(1)}"}
            order = http.post("/v1/orders", headers={**auth, "X-Request-Id": "tour-create-1"},
                              json={"merchant_reference": "first-run", "amount": "4.20",
                                    "currency": "NZD", "description": "Tea",
                                    "channel": "wechat"})
            assert order.status_code == 201, order.text  # was 500: a str, not a SecretStr
            assert order.headers["x-request-id"] == "tour-create-1"
            tokens.append(order.json()["client_token"])
            code = http.post("/sandbox/wallet/login", json={"user": "ivy"}).json()["code"]
            pay = http.post(f"/v1/client/orders/{order.json()['id']}/pay",
                            headers={"X-Request-Id": "tour-pay-1"},
                            json={"client_token": tokens[0], "login_code": code})
            assert pay.status_code == 200, pay.text
            made = http.get("/healthz")
            assert re.fullmatch(r"req_[0-9a-f]{16}", made.headers["x-request-id"])
            assert http.get("/healthz", headers={"X-Request-Id": "bad id; drop table"}).headers[
                "x-request-id"].startswith("req_")
            paid = http.post("/sandbox/wallet/requestPayment", json=pay.json()["wechat"])
            assert paid.json() == {"errMsg": "requestPayment:ok"}
            status = http.get(f"/v1/client/orders/{order.json()['id']}",
                              params={"client_token": tokens[0]})
            assert status.status_code == 200
            assert http.get("/metrics").status_code == 200  # open in the sandbox
    finally:
        out, err = stop(proc)
    output = banner + out + err
    assert "database         : postgresql+asyncpg://postgres:***@127.0.0.1" in banner
    for canary in (DB_PASSWORD, PROCESS_WEBHOOK_SECRET, METRICS_TOKEN, *tokens, cred.LATIPAY_API_KEY,
                   cred.MINI_APP_SECRET, cred.WECHATPAY_APIV3_KEY):
        assert canary not in output, "a secret reached the process's output"
    assert "Traceback" not in output
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all("level" in entry and "event" in entry for entry in lines)
    assert {"uvicorn.error", "minigate.providers"} <= {entry.get("logger") for entry in lines}
    calls = [e for e in lines if e.get("logger") == "minigate.providers"]
    assert any(e.get("request_id") == "tour-pay-1" and "create_payment" in e["event"]
               and e["level"] == "debug" for e in calls), calls


def _read_banner(proc: object) -> str:
    """The banner lines on stdout (printed before uvicorn starts)."""
    stdout = proc.stdout  # type: ignore[attr-defined]
    lines = [stdout.readline() for _ in range(6)]
    return "".join(lines)
