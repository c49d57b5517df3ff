"""The command line: clear errors, migrations, the standalone sandbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from click.testing import CliRunner

from minigate.cli import main
from minigate.sandbox import credentials as cred
from minigate.sandbox.server import create_sandbox_app, describe


def test_migrate_creates_the_schema(tmp_path: Path, monkeypatch: object) -> None:
    db = tmp_path / "m.db"
    result = CliRunner().invoke(main, ["migrate"],
                                env={"MINIGATE_DATABASE_URL": f"sqlite+aiosqlite:///{db}"})
    assert result.exit_code == 0, result.output
    tables = {r[0] for r in sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "payments", "refunds", "events", "notifications",
            "idempotency_keys", "alembic_version"} <= tables


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["migrate", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code != 0
    assert "config file not found" in result.output


def test_invalid_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('order_ttl_seconds = 5\n')
    result = CliRunner().invoke(main, ["migrate", "--config", str(bad)])
    assert result.exit_code != 0 and "invalid configuration" in result.output
    assert "order_ttl_seconds" in result.output


def test_live_mode_needs_an_api_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve"], env={"MINIGATE_MODE": "live",
                                                      "MINIGATE_API_KEY": ""})
    assert result.exit_code != 0


async def test_standalone_sandbox_serves_login_and_latipay() -> None:
    app = create_sandbox_app(time_scale=0.001)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sandbox.test") as http:
        code = (await http.post("/sandbox/wallet/login", json={"user": "dan"})).json()["code"]
        r = await http.get("/sandbox/wechat-login/sns/jscode2session", params={
            "appid": cred.MINI_APP_ID, "secret": cred.MINI_APP_SECRET, "js_code": code,
            "grant_type": "authorization_code"})
        assert r.json()["openid"].startswith("o")
        again = await http.get("/sandbox/wechat-login/sns/jscode2session", params={
            "appid": cred.MINI_APP_ID, "secret": cred.MINI_APP_SECRET, "js_code": code,
            "grant_type": "authorization_code"})
        assert again.json()["errcode"] == 40029  # single use
        r = await http.post("/sandbox/latipay/v2/miniapppay", json={"user_id": "U000SANDBOX"})
        assert r.json()["code"] == 204  # missing fields, in Latipay's own words
    assert cred.LATIPAY_API_KEY in describe("http://x")
