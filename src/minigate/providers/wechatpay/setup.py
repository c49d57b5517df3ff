"""From :class:`~minigate.config.WechatpaySettings` to a connector (keys loaded once here)."""

from __future__ import annotations

import logging

from minigate.clock import Clock
from minigate.config import WechatpaySettings
from minigate.providers.base import ClientCertificate, ProviderClient, Transport
from minigate.providers.wechatpay import keys, v3sign
from minigate.providers.wechatpay.client import WechatpayV2Client, WechatpayV3Client
from minigate.providers.wechatpay.v2_messages import V2Account
from minigate.providers.wechatpay.v3_messages import V3Account

log = logging.getLogger("minigate.wechatpay")
#: WeChat Pay's own API (the simulator and test doubles live elsewhere).
WECHAT_PAY_HOST = "https://api.mch.weixin.qq.com"


def build_v3(name: str, cfg: WechatpaySettings, appid: str, transport: Transport,
             clock: Clock | None = None) -> WechatpayV3Client:
    """A v3 client; the WeChat Pay public key (if any) is in the key ring from the start."""
    private_key = keys.load_private_key(
        keys.pem_text(cfg.private_key.get_secret_value(), cfg.private_key_path))
    ring = v3sign.KeyRing()
    if cfg.public_key_id:
        ring.add(cfg.public_key_id,
                 keys.load_public_key(keys.pem_text(cfg.public_key, cfg.public_key_path)))
    account = V3Account(cfg.mchid, cfg.appid or appid, cfg.apiv3_key.get_secret_value(),
                        private_key, cfg.merchant_serial.upper(), cfg.base_url, cfg.public_key_id)
    return WechatpayV3Client(account, transport, ring=ring,
                             fetch_certificates=cfg.platform_certificates, clock=clock,
                             name=name, min_close_age=cfg.min_close_age)


def build_v2(name: str, cfg: WechatpaySettings, appid: str, transport: Transport,
             clock: Clock | None = None) -> WechatpayV2Client:
    cert = (ClientCertificate(cfg.client_cert_path, cfg.client_key_path)
            if cfg.client_cert_path and cfg.client_key_path else None)
    if cert is None and cfg.base_url.startswith(WECHAT_PAY_HOST):
        log.warning("%s: no client_cert_path/client_key_path: WeChat Pay refuses API v2 "
                    "refunds without the merchant's API client certificate", name)
    account = V2Account(cfg.mchid, cfg.appid or appid, cfg.apiv2_key.get_secret_value(),
                        cfg.sign_type, cfg.base_url, cert)
    return WechatpayV2Client(account, transport, clock=clock, name=name,
                             min_close_age=cfg.min_close_age)


def build_client(name: str, cfg: WechatpaySettings, appid: str, transport: Transport,
                 clock: Clock | None = None) -> ProviderClient:
    """The client for ``cfg.api_version``."""
    if cfg.api_version == "v2":
        return build_v2(name, cfg, appid, transport, clock)
    return build_v3(name, cfg, appid, transport, clock)
