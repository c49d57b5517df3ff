"""The one place that knows which provider connectors exist and how to build them."""

from __future__ import annotations

from minigate.clock import Clock
from minigate.config import Settings
from minigate.providers.base import ProviderClient
from minigate.providers.cbtis import CbtisAccount, CbtisClient
from minigate.providers.latipay import LatipayAccount, LatipayClient
from minigate.providers.qfpay import QfpayAccount, QfpayClient
from minigate.providers.wechatpay.setup import build_client
from minigate.transport import HttpxTransport


def build_providers(settings: Settings, transport: HttpxTransport,
                    clock: Clock | None = None) -> dict[str, ProviderClient]:
    """A client for every provider that has credentials in ``settings``.

    ``clock`` is the runtime's clock, for connectors that keep time (token expiry).
    """
    clients: dict[str, ProviderClient] = {}
    mini_app_id = settings.wechat_login.appid
    lp = settings.latipay
    if lp.configured:
        account = LatipayAccount(lp.user_id, lp.wallet_id, lp.api_key.get_secret_value(),
                                 lp.base_url, lp.app_id or mini_app_id, lp.currency)
        clients["latipay"] = LatipayClient(account, transport.for_provider("latipay"))
    qf = settings.qfpay
    if qf.configured:
        qf_account = QfpayAccount(qf.app_code, qf.client_key.get_secret_value(), qf.base_url,
                                  qf.mchid, qf.sign_type)
        clients["qfpay"] = QfpayClient(qf_account, transport.for_provider("qfpay"))
    cb = settings.cbtis
    if cb.configured:
        cb_account = CbtisAccount(cb.client_id, cb.api_key.get_secret_value(), cb.base_url,
                                  cb.sub_appid or mini_app_id,
                                  cb.webhook_secret.get_secret_value())
        clients["cbtis"] = CbtisClient(cb_account, transport.for_provider("cbtis"), clock)
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
