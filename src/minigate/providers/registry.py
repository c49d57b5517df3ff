"""The one place that knows which provider connectors exist and how to build them."""

from __future__ import annotations

from minigate.clock import Clock
from minigate.config import Settings
from minigate.providers.base import ProviderClient
from minigate.providers.latipay import LatipayAccount, LatipayClient
from minigate.providers.wechatpay.setup import build_client
from minigate.transport import HttpxTransport


def build_providers(settings: Settings, transport: HttpxTransport,
                    clock: Clock | None = None) -> dict[str, ProviderClient]:
    """A client for every provider that has credentials in ``settings``."""
    clients: dict[str, ProviderClient] = {}
    lp = settings.latipay
    if lp.configured:
        account = LatipayAccount(lp.user_id, lp.wallet_id, lp.api_key.get_secret_value(),
                                 lp.base_url, lp.app_id or settings.wechat_login.appid)
        clients["latipay"] = LatipayClient(account, transport.for_provider("latipay"))
    appid = settings.wechat_login.appid
    wechatpay_blocks = {
        "wechatpay": settings.wechatpay,
        # This block always speaks v2, whatever its api_version says.
        "wechatpay-v2": settings.wechatpay_v2.model_copy(update={"api_version": "v2"}),
    }
    for name, cfg in wechatpay_blocks.items():
        if cfg.configured:
            clients[name] = build_client(name, cfg, appid, transport.for_provider(name), clock)
    return clients
