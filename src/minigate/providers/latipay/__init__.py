"""Latipay v2 (New Zealand / Australia): WeChat and Alipay mini apps.

``signing`` has the HMAC rules, ``messages`` builds and parses every call (pure),
``client`` runs them over the transport. See docs/providers/latipay.md for the facts and
the assumptions (refund idempotency, query amount format).
"""

from minigate.providers.latipay.client import LatipayClient
from minigate.providers.latipay.messages import LatipayAccount

__all__ = ["LatipayAccount", "LatipayClient"]
