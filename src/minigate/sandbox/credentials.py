"""Sandbox credentials. PUBLIC TEST VALUES, NOT SECRETS: they only open the simulators.

``minigate serve`` in sandbox mode configures its provider accounts with these, pointed at
its own ``/sandbox/…`` routes, so the whole flow runs with no real credentials. The
identifiers here are fixed; the keys are the process's (these constants and per-process RSA
keys) or, with a keys directory, those kept there (:mod:`.keystore`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import SecretStr

from minigate.config import (
    CbtisSettings,
    LatipaySettings,
    QfpaySettings,
    Settings,
    WechatLoginSettings,
    WechatpaySettings,
)
from minigate.sandbox.wechat_keys import SandboxWechatKeys

if TYPE_CHECKING:
    from minigate.sandbox.keystore import SandboxCredentials

MINI_APP_ID = "wx5a7dbe0000sandbox"
MINI_APP_SECRET = "sandbox-mini-app-secret-not-a-secret"

LATIPAY_USER_ID = "U000SANDBOX"
LATIPAY_WALLET_ID = "W000SANDBOX"
LATIPAY_API_KEY = "sandbox-latipay-api-key-not-a-secret"
LATIPAY_CURRENCY = "NZD"

QFPAY_APP_CODE = "QF000SANDBOXAPPCODE0000000000000"
QFPAY_CLIENT_KEY = "sandbox-qfpay-client-key-not-a-secret"
QFPAY_CURRENCY = "HKD"

CBTIS_CLIENT_ID = "cbtis-sandbox-client"
CBTIS_API_KEY = "sandbox-cbtis-api-key-not-a-secret"
CBTIS_WEBHOOK_SECRET = "sandbox-cbtis-webhook-secret-not-a-secret"
CBTIS_CURRENCY = "HKD"

WECHATPAY_MCHID = "1900009999"
WECHATPAY_APIV3_KEY = "sandboxapiv3key0notasecret000000"  # 32 bytes, as WeChat requires
WECHATPAY_APIV2_KEY = "sandboxapiv2key0notasecret000000"
#: WeChat Pay's rule (seconds before an order may be closed), before time compression.
WECHATPAY_MIN_CLOSE_AGE = 300


def wechatpay_min_close_age(time_scale: float) -> int:
    """The close rule as the sandbox applies it: 5 minutes × time_scale, at least 1 s."""
    return max(1, math.ceil(WECHATPAY_MIN_CLOSE_AGE * time_scale))


def _as_credentials(keys: SandboxWechatKeys | SandboxCredentials | None
                    ) -> SandboxCredentials:
    from minigate.sandbox import keystore

    if keys is None:
        return keystore.ephemeral_credentials()
    if isinstance(keys, SandboxWechatKeys):
        return keystore.with_wechat_keys(keys)
    return keys


def wechatpay_settings(base: str, creds: SandboxCredentials, time_scale: float
                       ) -> tuple[WechatpaySettings, WechatpaySettings]:
    """The v3 account (public key AND platform certificates, as during a migration) and
    the v2 account, both pointed at the simulator (``base`` ends in ``/wechatpay``)."""
    keys = creds.wechat
    common = WechatpaySettings(mchid=WECHATPAY_MCHID, appid=MINI_APP_ID, base_url=base,
                               min_close_age=wechatpay_min_close_age(time_scale))
    v3 = common.model_copy(update={
        "api_version": "v3", "apiv3_key": SecretStr(creds.wechatpay_apiv3_key),
        "private_key": SecretStr(keys.merchant_key_pem()),
        "merchant_serial": keys.merchant_serial, "public_key_id": keys.public_key_id,
        "public_key": keys.public_key_pem(), "platform_certificates": True})
    v2 = common.model_copy(update={"api_version": "v2",
                                   "apiv2_key": SecretStr(creds.wechatpay_apiv2_key),
                                   "sign_type": "HMAC-SHA256"})
    return v3, v2


def sandbox_settings(settings: Settings,
                     keys: SandboxWechatKeys | SandboxCredentials | None = None) -> Settings:
    """``settings`` with every provider pointed at the in-process simulators.

    ``keys``: the simulated merchants' credentials (or only the WeChat Pay keys); pass the
    same to the :class:`~minigate.sandbox.world.SandboxWorld` (default: this process's).
    """
    creds = _as_credentials(keys)
    base = settings.public_url.rstrip("/") + "/sandbox"
    wx_v3, wx_v2 = wechatpay_settings(f"{base}/wechatpay", creds, settings.sandbox.time_scale)
    return settings.model_copy(update={
        # Explicit: with the simulators' credentials filled in, "auto" would read as live.
        "mode": "sandbox",
        "wechatpay": wx_v3, "wechatpay_v2": wx_v2,
        "wechat_login": WechatLoginSettings(appid=MINI_APP_ID,
                                            secret=SecretStr(creds.mini_app_secret),
                                            base_url=f"{base}/wechat-login"),
        "latipay": LatipaySettings(user_id=LATIPAY_USER_ID, wallet_id=LATIPAY_WALLET_ID,
                                   api_key=SecretStr(creds.latipay_api_key),
                                   base_url=f"{base}/latipay",
                                   app_id=MINI_APP_ID, currency=LATIPAY_CURRENCY),
        "qfpay": QfpaySettings(app_code=QFPAY_APP_CODE,
                               client_key=SecretStr(creds.qfpay_client_key),
                               base_url=f"{base}/qfpay",
                               sign_type=settings.qfpay.sign_type),
        "cbtis": CbtisSettings(client_id=CBTIS_CLIENT_ID, api_key=SecretStr(creds.cbtis_api_key),
                               webhook_secret=SecretStr(creds.cbtis_webhook_secret),
                               base_url=f"{base}/cbtis", sub_appid=MINI_APP_ID),
    })
