"""Sandbox credentials. PUBLIC TEST VALUES, NOT SECRETS: they only open the simulators.

``minigate serve`` in sandbox mode configures its provider accounts with these, pointed at
its own ``/sandbox/…`` routes, so the whole flow runs with no real credentials.
"""

from __future__ import annotations

from pydantic import SecretStr

from minigate.config import LatipaySettings, Settings, WechatLoginSettings

MINI_APP_ID = "wx5a7dbe0000sandbox"
MINI_APP_SECRET = "sandbox-mini-app-secret-not-a-secret"

LATIPAY_USER_ID = "U000SANDBOX"
LATIPAY_WALLET_ID = "W000SANDBOX"
LATIPAY_API_KEY = "sandbox-latipay-api-key-not-a-secret"
LATIPAY_CURRENCY = "NZD"


def sandbox_settings(settings: Settings) -> Settings:
    """``settings`` with every provider pointed at the in-process simulators."""
    base = settings.public_url.rstrip("/") + "/sandbox"
    return settings.model_copy(update={
        "wechat_login": WechatLoginSettings(appid=MINI_APP_ID, secret=SecretStr(MINI_APP_SECRET),
                                            base_url=f"{base}/wechat-login"),
        "latipay": LatipaySettings(user_id=LATIPAY_USER_ID, wallet_id=LATIPAY_WALLET_ID,
                                   api_key=SecretStr(LATIPAY_API_KEY), base_url=f"{base}/latipay",
                                   app_id=MINI_APP_ID),
    })
