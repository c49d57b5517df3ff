"""Sandbox credentials. PUBLIC TEST VALUES, NOT SECRETS: they only open the simulators.

``minigate serve`` in sandbox mode configures its provider accounts with these, pointed at
its own ``/sandbox/…`` routes, so the whole flow runs with no real credentials.
"""

from __future__ import annotations

from pydantic import SecretStr

from minigate.config import (
    CbtisSettings,
    LatipaySettings,
    QfpaySettings,
    Settings,
    WechatLoginSettings,
)

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


def sandbox_settings(settings: Settings) -> Settings:
    """``settings`` with every provider pointed at the in-process simulators."""
    base = settings.public_url.rstrip("/") + "/sandbox"
    return settings.model_copy(update={
        "wechat_login": WechatLoginSettings(appid=MINI_APP_ID, secret=SecretStr(MINI_APP_SECRET),
                                            base_url=f"{base}/wechat-login"),
        "latipay": LatipaySettings(user_id=LATIPAY_USER_ID, wallet_id=LATIPAY_WALLET_ID,
                                   api_key=SecretStr(LATIPAY_API_KEY), base_url=f"{base}/latipay",
                                   app_id=MINI_APP_ID),
        "qfpay": QfpaySettings(app_code=QFPAY_APP_CODE, client_key=SecretStr(QFPAY_CLIENT_KEY),
                               base_url=f"{base}/qfpay",
                               sign_type=settings.qfpay.sign_type),
        "cbtis": CbtisSettings(client_id=CBTIS_CLIENT_ID, api_key=SecretStr(CBTIS_API_KEY),
                               webhook_secret=SecretStr(CBTIS_WEBHOOK_SECRET), base_url=f"{base}/cbtis",
                               sub_appid=MINI_APP_ID),
    })
