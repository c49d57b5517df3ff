"""Sandbox credentials kept in a keys directory: created once, reused, exported."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509

from minigate.cli import main
from minigate.config import Settings, load_settings
from minigate.providers.registry import build_providers
from minigate.sandbox import keystore
from minigate.sandbox.keystore import KeyStoreError, SandboxCredentials, load_or_create
from minigate.transport import HttpxTransport


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SandboxCredentials:
    return load_or_create(tmp_path_factory.mktemp("ks") / "keys")


def test_created_once_then_reused(store: SandboxCredentials) -> None:
    assert store.directory is not None
    again = load_or_create(store.directory)
    assert again.wechat.merchant_key.private_numbers() == \
        store.wechat.merchant_key.private_numbers()
    assert again.wechat.public_key.private_numbers() == store.wechat.public_key.private_numbers()
    assert (again.wechat.merchant_serial, again.wechat.public_key_id,
            again.wechat.platform_serial) == (store.wechat.merchant_serial,
                                              store.wechat.public_key_id,
                                              store.wechat.platform_serial)
    assert (again.wechatpay_apiv3_key, again.wechatpay_apiv2_key, again.latipay_api_key,
            again.qfpay_client_key, again.cbtis_api_key, again.cbtis_webhook_secret,
            again.mini_app_secret) == (
        store.wechatpay_apiv3_key, store.wechatpay_apiv2_key, store.latipay_api_key,
        store.qfpay_client_key, store.cbtis_api_key, store.cbtis_webhook_secret,
        store.mini_app_secret)
    assert len(store.wechatpay_apiv3_key.encode()) == 32  # WeChat's APIv3 key length


def test_files_are_private_and_consistent(store: SandboxCredentials) -> None:
    root = store.directory
    assert root is not None
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) >= 10
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), files
    # The merchant certificate's serial is the v3 serial_no; its CN is the mchid.
    cert = x509.load_pem_x509_certificate((root / keystore.MERCHANT_CERT).read_bytes())
    assert format(cert.serial_number, "X") == store.wechat.merchant_serial
    assert cert.public_key().public_numbers() == \
        store.wechat.merchant_key.public_key().public_numbers()
    platform = store.platform_cert_file
    assert platform is not None and platform.read_bytes() == store.wechat.platform_cert_pem


def test_unusable_directories_are_clear_errors(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(KeyStoreError, match="no credentials.json"):
        load_or_create(other)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "credentials.json").write_text('{"format": 1}')
    with pytest.raises(KeyStoreError, match="incomplete or damaged"):
        load_or_create(damaged)


def test_credentials_command_prints_a_working_configuration(store: SandboxCredentials,
                                                           tmp_path: Path) -> None:
    assert store.directory is not None
    result = CliRunner().invoke(main, ["sandbox", "credentials", "--keys-dir",
                                       str(store.directory), "--base-url", "http://127.0.0.1:9",
                                       "--format", "toml"])
    assert result.exit_code == 0, result.output
    toml = tmp_path / "minigate.toml"
    toml.write_text(result.output)
    settings = load_settings(toml)
    assert not settings.sandbox_mode  # every provider is configured: live mode, aimed at us
    assert settings.wechatpay.merchant_serial == store.wechat.merchant_serial
    assert settings.wechatpay.base_url == "http://127.0.0.1:9/sandbox/wechatpay"
    assert settings.latipay.api_key.get_secret_value() == store.latipay_api_key
    providers = build_providers(settings, HttpxTransport(httpx.AsyncClient()))
    assert {"latipay", "qfpay", "cbtis", "wechatpay", "wechatpay-v2"} <= set(providers)

    env = CliRunner().invoke(main, ["sandbox", "credentials", "--keys-dir",
                                    str(store.directory), "--format", "env"])
    assert env.exit_code == 0
    assert f"export WECHATPAY_CERT_SERIAL_NO={store.wechat.merchant_serial}" in env.output
    assert f"export WECHATPAY_APIV3_KEY={store.wechatpay_apiv3_key}" in env.output
    assert "WECHATPAY_PRIVATE_KEY_PATH=" in env.output and "-----BEGIN" not in env.output


def test_serve_in_sandbox_mode_keeps_its_keys(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``minigate serve`` in sandbox mode uses ./minigate-data/sandbox-keys: a restart comes
    back with the same keys, so outside clients configured once keep working."""
    import minigate.app
    import minigate.cli

    seen: list[Any] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(minigate.cli.uvicorn, "run", lambda app, **kw: None)

    def fake_create_app(settings: Settings) -> None:
        runtime = minigate.app.Runtime(settings)
        assert runtime.sandbox is not None
        seen.append((runtime.settings, runtime.sandbox.credentials))

    monkeypatch.setattr(minigate.app, "create_app", fake_create_app)
    env = {"MINIGATE_MODE": "sandbox", "MINIGATE_DATABASE_URL":
           f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"}
    for _ in range(2):
        result = CliRunner().invoke(main, ["serve", "--port", "9"], env=env)
        assert result.exit_code == 0, result.output
    (first_settings, first), (_, second) = seen
    assert first.directory == (tmp_path / keystore.DEFAULT_KEYS_DIR).resolve()
    assert first.wechat.merchant_serial == second.wechat.merchant_serial
    assert first_settings.wechatpay.merchant_serial == first.wechat.merchant_serial
    assert first_settings.latipay.api_key.get_secret_value() == first.latipay_api_key
