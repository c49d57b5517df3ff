"""Configuration rules: auto mode, unknown keys, partial credentials, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from minigate.app import Runtime
from minigate.config import (
    ConfigError,
    database_url_problem,
    load_settings,
    masked_url,
    sources,
    validation_message,
)
from minigate.jobs.runner import webhook_loopback_allowed

LATIPAY = {"user_id": "U1", "wallet_id": "W1", "api_key": "lk_config_canary"}


async def test_auto_sandbox_allows_a_loopback_webhook(sqlite_url: str) -> None:
    """Was: 'not public' traceback unless MINIGATE_MODE=sandbox was set."""
    settings = load_settings(database_url=sqlite_url, webhook_url="http://127.0.0.1:9/hooks")
    assert settings.mode == "auto" and settings.sandbox_mode
    runtime = Runtime(settings, auto_migrate=True, run_jobs=False)
    await runtime.start()
    try:
        assert runtime.settings.sandbox_mode
        assert webhook_loopback_allowed(runtime.settings)
    finally:
        await runtime.stop()


@pytest.mark.parametrize("given", [
    {"latipay": LATIPAY},
    {"qfpay": {"app_code": "A1", "client_key": "k"}},
    {"wechatpay": {"api_version": "v2", "mchid": "1", "apiv2_key": "k" * 32}},
])
def test_auto_is_live_when_a_provider_is_configured(given: dict) -> None:
    assert not load_settings(**given).sandbox_mode


@pytest.mark.parametrize(("given", "missing"), [
    ({"latipay": {"api_key": "k"}}, "latipay.user_id, latipay.wallet_id"),
    ({"qfpay": {"client_key": "k"}}, "qfpay.app_code"),
    ({"cbtis": {"client_id": "c", "api_key": "k"}}, "cbtis.base_url"),
    ({"wechat_login": {"appid": "wx1"}}, "wechat_login.secret"),
    ({"wechatpay_v2": {"mchid": "1"}}, "wechatpay_v2.apiv2_key"),
    ({"wechatpay": {"api_version": "v2", "mchid": "1", "apiv2_key": "k",
                    "client_cert_path": "/etc/c.pem"}}, "wechatpay.client_key_path"),
])
def test_one_credential_missing_is_an_error_never_a_silent_sandbox(given: dict,
                                                                  missing: str) -> None:
    with pytest.raises(ConfigError, match=missing.replace(".", r"\.")):
        load_settings(**given)


def test_unknown_keys_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'latipay\.walletid'.*'wallet_id'"):
        load_settings(latipay={"walletid": "x"})
    config = tmp_path / "m.toml"
    config.write_text('[sandbox]\ntimescale = 0.1\n')
    with pytest.raises(ConfigError, match=r"'sandbox\.timescale'.*did you mean 'time_scale'"):
        load_settings(config)
    monkeypatch.setenv("MINIGATE_WEBHOOK_SECRET", "whsec_x")
    with pytest.raises(ConfigError, match="MINIGATE_WEBHOOK_SECRETS"):
        load_settings()
    monkeypatch.delenv("MINIGATE_WEBHOOK_SECRET")
    # Not settings: the test and benchmark switches; and a dict setting's nested keys.
    monkeypatch.setenv("MINIGATE_REQUIRE_POSTGRES", "1")
    monkeypatch.setenv("MINIGATE_BENCH_PG", "x")
    monkeypatch.setenv("MINIGATE_DEFAULT_PROVIDERS__WECHAT", "qfpay")
    assert load_settings().default_providers["wechat"] == "qfpay"


def test_not_toml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text("mode = live\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(config)


def test_sources_say_where_each_setting_came_from(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('public_url = "https://pay.example"\n[latipay]\nuser_id = "U1"\n')
    found = sources(config, {"MINIGATE_LATIPAY__API_KEY": "k", "MINIGATE_TEST_PG_HOST": "x"})
    assert found == {"public_url": f"file {config}", "latipay.user_id": f"file {config}",
                     "latipay.api_key": "env MINIGATE_LATIPAY__API_KEY"}


def test_secrets_are_masked_in_urls_and_errors() -> None:
    assert masked_url("postgresql+asyncpg://u:s3cr3t@h/db") == "postgresql+asyncpg://u:***@h/db"
    assert "s3cr3t" not in (database_url_problem("postgres://u:s3cr3t@h/db") or "")
    with pytest.raises(ValidationError) as caught:
        load_settings(webhook_secrets="whsec_not_a_list_canary")
    assert "whsec_not_a_list_canary" not in validation_message(caught.value)
