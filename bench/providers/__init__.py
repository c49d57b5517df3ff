"""One entry per provider: everything the benchmark needs to drive it.

A provider is one :class:`ProviderBench` in :data:`PROVIDERS`. Checkout is the same three
minigate calls for every provider (only ``provider``/``currency`` change); what differs is
how a correctly signed notification is built, what the provider acks with, the bare
baseline's provider work, and the signature-only cost (the crypto floor).
"""

from __future__ import annotations

from bench.providers.base import Notification, ProviderBench
from bench.providers.cbtis import CBTIS
from bench.providers.latipay import LATIPAY
from bench.providers.qfpay import QFPAY
from bench.providers.wechatpay import WECHATPAY
from bench.providers.wechatpay_v2 import WECHATPAY_V2

PROVIDERS: dict[str, ProviderBench] = {
    p.name: p for p in (LATIPAY, QFPAY, CBTIS, WECHATPAY, WECHATPAY_V2)}

__all__ = ["PROVIDERS", "Notification", "ProviderBench", "parse_providers"]


def parse_providers(text: str) -> list[str]:
    """``latipay,wechatpay`` or ``all`` → provider names (in the order given); ValueError
    names the unknown ones."""
    if text.strip() == "all":
        return list(PROVIDERS)
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown or not names:
        raise ValueError(f"unknown provider(s): {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(PROVIDERS)} or all")
    return names
