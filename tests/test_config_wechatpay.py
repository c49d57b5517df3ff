"""WeChat Pay settings: env vars, ``configured``, and which provider ids get registered."""

from __future__ import annotations

import pytest

from minigate.config import ConfigError, load_settings
from minigate.providers.registry import build_providers
from minigate.providers.wechatpay import WechatpayV2Client, WechatpayV3Client
from minigate.sandbox.wechat_keys import sandbox_wechat_keys
from minigate.transport import HttpxTransport


def test_v2_without_a_client_certificate_warns_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = {"api_version": "v2", "mchid": "1900000001", "apiv2_key": "k" * 32,
               "appid": "wxapp"}
    with caplog.at_level("WARNING", logger="minigate.wechatpay"):
        build_providers(load_settings(wechatpay=account), HttpxTransport())
    assert "client certificate" in caplog.text and "k" * 32 not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="minigate.wechatpay"):
        build_providers(load_settings(wechatpay=account | {
            "client_cert_path": "/etc/minigate/apiclient_cert.pem",
            "client_key_path": "/etc/minigate/apiclient_key.pem"}), HttpxTransport())
    assert "client certificate" not in caplog.text


def test_v2_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIGATE_WECHATPAY__API_VERSION", "v2")
    monkeypatch.setenv("MINIGATE_WECHATPAY__MCHID", "1900000001")
    monkeypatch.setenv("MINIGATE_WECHATPAY__APIV2_KEY", "k" * 32)
    monkeypatch.setenv("MINIGATE_WECHATPAY__APPID", "wxapp")
    settings = load_settings()
    assert settings.wechatpay.configured and settings.any_provider_configured()
    assert not settings.sandbox_mode
    assert "k" * 32 not in repr(settings)
    clients = build_providers(settings, HttpxTransport())
    assert isinstance(clients["wechatpay"], WechatpayV2Client)
    assert clients["wechatpay"].identity == {"app_id": "wxapp", "merchant_id": "1900000001"}


def test_v3_needs_keys_and_a_way_to_verify() -> None:
    keys = sandbox_wechat_keys()
    with pytest.raises(ConfigError, match=r"wechatpay\.merchant_serial.*private_key"):
        load_settings(wechatpay={"mchid": "1", "apiv3_key": "x" * 32})
    full = load_settings(wechatpay={
        "mchid": "1", "appid": "wxapp", "apiv3_key": "x" * 32,
        "private_key": keys.merchant_key_pem(), "merchant_serial": "abc",
        "public_key_id": keys.public_key_id, "public_key": keys.public_key_pem(),
        "platform_certificates": False, "min_close_age": 120},
        wechatpay_v2={"mchid": "1", "apiv2_key": "y" * 32})
    clients = build_providers(full, HttpxTransport())
    v3 = clients["wechatpay"]
    assert isinstance(v3, WechatpayV3Client) and v3.min_close_age == 120
    assert v3.account.merchant_serial == "ABC"
    assert isinstance(clients["wechatpay-v2"], WechatpayV2Client)
    assert "BEGIN PRIVATE KEY" not in repr(full) and "BEGIN PRIVATE KEY" not in repr(v3.account)
