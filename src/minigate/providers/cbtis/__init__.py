"""CBTIS payment intents: WeChat mini program payments (flow ``mini_program``).

``assumptions`` lists every unpublished detail (auth, webhooks, refunds, amount unit),
``signing`` the assumed webhook HMAC, ``messages`` builds and parses every call (pure),
``client`` adds the cached access token. See docs/providers/cbtis.md.
"""

from minigate.providers.cbtis.client import CbtisClient
from minigate.providers.cbtis.messages import CbtisAccount

__all__ = ["CbtisAccount", "CbtisClient"]
