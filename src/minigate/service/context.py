"""The composition root's product: everything a use case needs, built once at start."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from minigate.clock import Clock
from minigate.config import Settings
from minigate.errors import InvalidRequest
from minigate.login import WechatLogin
from minigate.providers.base import Channel, ProviderClient
from minigate.store.hot import HotStore, hot_store

log = logging.getLogger("minigate.service")


class FreshOrders:
    """The orders this process has just created, as it committed them, for the mini
    program's first ``pay`` call, which usually follows within seconds: that call may
    then skip reading the order back. An entry is a hint, never the truth: ``pay`` writes
    the payment only if the order is still at the entry's version (one conditional
    statement), and reads the order as it is otherwise. So an entry that has gone stale
    (the order was cancelled, or another replica took the pay call) costs a read, and
    losing them all (a restart) costs nothing.

    Bounded: at most ``limit`` entries, the oldest dropped first; an entry is used once."""

    def __init__(self, limit: int = 2048) -> None:
        self.limit = limit
        self._orders: dict[str, Any] = {}

    def add(self, order: Any) -> None:
        """``order``: a record of a row as committed (``store.hot.record``)."""
        if len(self._orders) >= self.limit:
            del self._orders[next(iter(self._orders))]  # the oldest: dicts keep order
        self._orders[order.id] = order

    def take(self, order_id: str) -> Any | None:
        return self._orders.pop(order_id, None)

    def __len__(self) -> int:
        return len(self._orders)


@dataclass
class ServiceContext:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    providers: Mapping[str, ProviderClient]
    login: WechatLogin | None
    clock: Clock
    #: Set whenever there is background work to do sooner than the next poll.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    #: Orders created here, for ``pay`` (a hint: see :class:`FreshOrders`).
    fresh_orders: FreshOrders = field(default_factory=FreshOrders, repr=False, compare=False)
    _hot: HotStore | None = field(default=None, init=False, repr=False, compare=False)

    def provider(self, name: str) -> ProviderClient:
        try:
            return self.providers[name]
        except KeyError:
            raise InvalidRequest(f"provider {name!r} is not configured", param="provider",
                                 code="provider_not_configured") from None

    def provider_for(self, channel: Channel, name: str | None) -> ProviderClient:
        """The named provider, or the configured default for the channel; it must serve it."""
        chosen = name or self.settings.default_providers.get(channel.value, "")
        client = self.provider(chosen)
        if channel not in client.channels:
            raise InvalidRequest(f"provider {chosen!r} does not serve channel {channel.value!r}",
                                 param="channel", code="channel_not_supported")
        return client

    def notify_url(self, provider: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/v1/notify/{provider}"

    @property
    def hot(self) -> HotStore:
        """The lean store path of the hot transactions (``store/hot.py``), on the engine
        the sessions are bound to."""
        bind = self.sessions.kw["bind"]
        cached = self._hot
        if cached is not None and cached.engine is bind:  # one lookup, not a weak-key one
            return cached
        assert isinstance(bind, AsyncEngine)
        self._hot = hot_store(bind)
        return self._hot

    @property
    def webhooks_enabled(self) -> bool:
        return bool(self.settings.webhook_url)

    def kick(self) -> None:
        """Ask the job runner to look for due work now."""
        self.wakeup.set()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
