"""The one place that knows which provider connectors exist and how to build them."""

from __future__ import annotations

from minigate.config import Settings
from minigate.providers.base import ProviderClient
from minigate.providers.latipay import LatipayAccount, LatipayClient
from minigate.transport import HttpxTransport


def build_providers(settings: Settings, transport: HttpxTransport) -> dict[str, ProviderClient]:
    """A client for every provider that has credentials in ``settings``."""
    clients: dict[str, ProviderClient] = {}
    lp = settings.latipay
    if lp.configured:
        account = LatipayAccount(lp.user_id, lp.wallet_id, lp.api_key.get_secret_value(),
                                 lp.base_url, lp.app_id or settings.wechat_login.appid)
        clients["latipay"] = LatipayClient(account, transport.for_provider("latipay"))
    return clients
