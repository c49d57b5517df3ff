"""How long the sandbox keeps what it simulated, and forgetting the rest.

A real provider keeps a payment for years; a sandbox that other teams' tests share for weeks
would grow with every order they ever made, in memory and in the time each full garbage
collection takes to walk it. So every simulator notes each record it creates (an order, a
transaction, a refund) in a **ledger** of ``(noted_at, key)`` pairs, in the order they were
noted, and the least recently active are forgotten when either limit is passed:

- ``keep``: a record whose last activity — its creation, or since then its payment, a
  refund of it, its close — is longer ago than this is forgotten, whatever its state
  (default 24 hours; ``None``: no age limit);
- ``max_records``: a simulator keeps at most this many of each kind of record, the least
  recently active going first (default 100,000; ``None``: no limit).

Forgetting removes the record from every index of its simulator and its prepay or trade
from the WeChat or Alipay core, so a query, refund or close that names it is answered like
one for a payment that never existed. Notifications already being delivered carry on.

The sweep by age runs at most once a minute, when a record is noted (so an idle sandbox
does nothing and a test with a frozen clock decides when); the count limit is kept at every
creation. A ledger entry is a tuple of a datetime and a string (or a tuple of strings), which
the garbage collector stops tracking after one look: remembering the order costs no walk.
Activity on a record (:meth:`Ledger.touch`) notes it again at the end; its older entries
are passed over when they come up. A record that went with another (WeChat Pay's refunds
with their order) is no longer counted (:meth:`Ledger.gone`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

from minigate.clock import Clock

DEFAULT_KEEP = timedelta(hours=24)
DEFAULT_MAX_RECORDS = 100_000
SWEEP_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class RetentionPolicy:
    """What the sandbox keeps. ``None`` means no limit of that kind."""

    keep: timedelta | None = DEFAULT_KEEP
    max_records: int | None = DEFAULT_MAX_RECORDS

    def __post_init__(self) -> None:
        if self.keep is not None and self.keep <= timedelta(0):
            raise ValueError("keep must be positive (or None for no age limit)")
        if self.max_records is not None and self.max_records < 1:
            raise ValueError("max_records must be at least 1 (or None for no limit)")

    @classmethod
    def from_hours(cls, keep_hours: float, max_records: int) -> RetentionPolicy:
        """The settings' and the command line's form: 0 means no limit of that kind."""
        return cls(timedelta(hours=keep_hours) if keep_hours else None, max_records or None)


KEEP_ALL = RetentionPolicy(keep=None, max_records=None)


class Ledger:
    """One kind of record of one simulator, in order of last activity. ``forget(key)``
    removes the record from the simulator's indexes (it may be gone already: a no-op
    then)."""

    def __init__(self, retention: Retention, name: str,
                 forget: Callable[[Hashable], None]) -> None:
        self.retention = retention
        self.name = name
        self._forget = forget
        self._order: deque[tuple[datetime, Hashable]] = deque()
        #: How many of a key's entries to pass over when they come up: one for each
        #: later entry of the key (:meth:`touch`), one if its record went (:meth:`gone`).
        self._skip: dict[Hashable, int] = {}
        self._stale = 0  # sum(self._skip.values())
        self.forgotten = 0

    def __len__(self) -> int:
        """How many records are kept."""
        return len(self._order) - self._stale

    def add(self, key: Hashable) -> None:
        """A record was created under ``key``: note it, and keep both limits."""
        now = self.retention.clock.now()
        self._order.append((now, key))
        limit = self.retention.policy.max_records
        if limit is not None and len(self) > limit:
            self._drop(None, limit)
        self.retention.sweep_if_due(now)

    def touch(self, key: Hashable) -> None:
        """The record under ``key`` (kept: the caller has just found it) was paid,
        refunded or closed: it is kept as long as one created now."""
        now = self.retention.clock.now()
        self._order.append((now, key))
        self._pass_over(key)
        self.retention.sweep_if_due(now)

    def gone(self, key: Hashable) -> None:
        """The record under ``key`` (kept until now) was forgotten with another record:
        count it as forgotten now (its entry is passed over when it comes up)."""
        self._pass_over(key)
        self.forgotten += 1

    def _pass_over(self, key: Hashable) -> None:
        self._skip[key] = self._skip.get(key, 0) + 1
        self._stale += 1

    def _drop(self, cutoff: datetime | None, limit: int | None) -> int:
        order, skip, dropped = self._order, self._skip, 0
        while order and ((limit is not None and len(order) - self._stale > limit)
                         or (cutoff is not None and order[0][0] < cutoff)):
            key = order.popleft()[1]
            passed = skip.get(key)
            if passed:  # a later entry of this key, or its record is gone
                self._stale -= 1
                if passed == 1:
                    del skip[key]
                else:
                    skip[key] = passed - 1
                continue
            self._forget(key)
            dropped += 1
        self.forgotten += dropped
        return dropped


class Retention:
    """The sandbox world's ledgers and the policy they keep."""

    def __init__(self, clock: Clock, policy: RetentionPolicy | None = None) -> None:
        self.clock = clock
        self.policy = policy or RetentionPolicy()
        self._ledgers: list[Ledger] = []
        #: Other things swept with the ledgers, given the cutoff (``None``: keep by age).
        self._sweepers: list[Callable[[datetime | None], int]] = []
        self._swept_at: datetime | None = None

    def ledger(self, name: str, forget: Callable[[Hashable], None]) -> Ledger:
        ledger = Ledger(self, name, forget)
        self._ledgers.append(ledger)
        return ledger

    def also_sweep(self, sweeper: Callable[[datetime | None], int]) -> None:
        self._sweepers.append(sweeper)

    def sweep_if_due(self, now: datetime) -> int:
        if self._swept_at is not None and now - self._swept_at < SWEEP_EVERY:
            return 0
        return self.sweep(now)

    def sweep(self, now: datetime | None = None) -> int:
        """Forget what either limit says to, now. Returns how many records went."""
        now = now or self.clock.now()
        self._swept_at = now
        keep = self.policy.keep
        cutoff = now - keep if keep is not None else None
        dropped = sum(ledger._drop(cutoff, self.policy.max_records) for ledger in self._ledgers)
        return dropped + sum(sweeper(cutoff) for sweeper in self._sweepers)

    def kept(self) -> dict[str, int]:
        """How many records of each kind are kept (for ``GET /sandbox/_retention``)."""
        return {ledger.name: len(ledger) for ledger in self._ledgers}

    def forgotten(self) -> dict[str, int]:
        return {ledger.name: ledger.forgotten for ledger in self._ledgers}
