"""/healthz is liveness only; /readyz says what is not ready; routine provider calls are
DEBUG lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.ops.live import live_app
from tests.support import Harness


async def test_readyz_on_a_database_not_at_head(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    async with live_app(url, migrate=False, run_jobs=True) as (runtime, http):
        assert (await http.get("/healthz")).json()["status"] == "ok"
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"]["ok"] is True
        assert checks["schema"] == {"ok": False, "detail": "empty"}
        assert checks["jobs"]["ok"] is True
        assert runtime.runner is not None
        await runtime.runner.stop()
        checks = (await http.get("/readyz")).json()["checks"]
        assert checks["jobs"] == {"ok": False, "detail": "stopped"}


async def test_readyz_when_the_database_is_gone(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    assert (await gw.api.get("/readyz")).status_code == 200
    assert gw.runtime.engine is not None
    await gw.runtime.engine.dispose()
    gw.runtime.engine.pool._creator = _refuse  # type: ignore[attr-defined]
    ready = await gw.api.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["ok"] is False
    assert (await gw.api.get("/healthz")).status_code == 200
    metrics = (await gw.api.get("/metrics")).text
    assert "minigate_database_up 0.0" in metrics


def _refuse(*_: object) -> object:
    raise ConnectionRefusedError(111, "refused")


async def test_provider_calls_are_debug_lines_with_the_request_id(
        sqlite_gateway: Harness, caplog: pytest.LogCaptureFixture) -> None:
    gw = sqlite_gateway
    order = await gw.create_order()
    caplog.set_level(logging.INFO)
    code = await gw.login_code()
    r = await gw.api.post(f"/v1/client/orders/{order['id']}/pay",
                          headers={"X-Request-Id": "pay-debug-1"},
                          json={"client_token": order["client_token"], "login_code": code})
    assert r.status_code == 200 and r.headers["x-request-id"] == "pay-debug-1"
    assert not [rec for rec in caplog.records
                if rec.name in ("httpx", "minigate.providers", "minigate.transport")]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    order = await gw.create_order()
    r = await gw.api.post(f"/v1/client/orders/{order['id']}/pay",
                          headers={"X-Request-Id": "pay-debug-2"},
                          json={"client_token": order["client_token"],
                                "login_code": await gw.login_code()})
    calls = [rec for rec in caplog.records if rec.name == "minigate.providers"]
    assert calls and all(rec.levelno == logging.DEBUG for rec in calls)
    assert "latipay create_payment: ok" in calls[0].getMessage()
