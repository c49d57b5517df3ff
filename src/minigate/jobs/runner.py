"""The job runner: claims due work with leases and does it.

Three kinds of due work, each found by an indexed scan:

* payments and refunds whose ``next_check_at`` has passed → query the provider;
* open orders past ``expires_at`` → close at the provider, then locally;
* outbox events awaiting delivery → POST to the merchant's webhook URL.

Claiming pushes the row's due time forward by a lease in the claiming transaction
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers never take the same row).
If a worker dies mid-job, the lease runs out and another worker picks the row up again;
every job is safe to repeat because the state changes it makes are conditional.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from minigate.config import Settings
from minigate.domain.states import OPEN_STATES
from minigate.errors import MinigateError
from minigate.jobs import destination, signing
from minigate.observability import metrics
from minigate.service.context import ServiceContext
from minigate.store.failures import database_unavailable
from minigate.store.models import Event, Order, Payment, Refund, WebhookAttempt
from minigate.transport import http_client

log = logging.getLogger("minigate.jobs")

#: The default lease; ``Settings.job_lease_seconds`` sets the one a runner uses.
LEASE = timedelta(seconds=60)
BATCH = 50
#: After a kick, wait this long before the pass, so that kicks close together share it.
KICK_COALESCE = 0.05
#: How often a runner deletes Idempotency-Keys older than their retention (24 h).
PURGE_EVERY = timedelta(minutes=10)
#: Merchant webhooks: retried with backoff and jitter for at least this long, then parked.
DELIVERY_WINDOW = timedelta(hours=25)


def delivery_backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """30 s, 1 m, 2 m, … capped at 1 h, each with ±20 % jitter."""
    base = min(30 * 2 ** max(attempts - 1, 0), 3600)
    jitter = (rng or random).uniform(0.8, 1.2)
    return timedelta(seconds=base * jitter)


class JobRunner:
    """Runs due work until stopped; ``run_once`` does one pass (tests, CLI)."""

    def __init__(self, ctx: ServiceContext, http: httpx.AsyncClient | None = None,
                 *, poll_interval: float = 1.0, worker_id: str = "worker",
                 resolver: destination.Resolver = destination.system_resolver) -> None:
        self.ctx = ctx
        self.resolver = resolver
        self.http = http or http_client()
        self.poll_interval = poll_interval
        self.worker_id = worker_id
        self._task: asyncio.Task[None] | None = None
        self._next_purge: datetime | None = None
        self.outage = Outage(base=min(poll_interval, 1.0))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="minigate-jobs")

    @property
    def alive(self) -> bool:
        """The loop task runs (for /readyz)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            self.ctx.wakeup.clear()  # a kick during the pass below wakes the wait after it
            try:
                did = await self.run_once()
            except Exception as exc:  # keep the loop alive
                metrics.job_pass_failed(database_unavailable(exc))
                did = 0
                if not self.outage.failed(exc, self.ctx.clock.now()):
                    log.exception("job pass failed")
                await asyncio.sleep(self.outage.backoff())
                continue
            self.outage.passed(self.ctx.clock.now())
            if did >= BATCH:
                continue  # more may be waiting
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the kick wakes it, and stop() would then wait for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self.ctx.wakeup.wait()
                # Woken by a kick: let the kicks of the next moments join this pass, so a
                # stream of paid orders costs a few passes a second, not one pass each.
                await asyncio.sleep(KICK_COALESCE)

    async def run_once(self) -> int:
        """One pass over every kind of due work; returns how many items were handled."""
        done = 0
        done += await self._each(await self._claim(Payment, Payment.status.in_(
            ["created", "pending", "unknown"]), Payment.next_check_at), self._check_payment)
        done += await self._each(await self._claim(Refund, Refund.status.in_(
            ["pending", "unknown"]), Refund.next_check_at), self._check_refund)
        done += await self._each(await self._claim_expired(), self._expire)
        await self._purge_idempotency_keys()
        if self.ctx.settings.webhook_url:
            done += await self._each(await self._claim(Event, Event.delivery_status == "pending",
                                                       Event.next_attempt_at), self._deliver)
        metrics.job_pass_done()
        return done

    async def _each(self, ids: Sequence[Any], job: Callable[[Any], Awaitable[None]]) -> int:
        for item in ids:
            try:
                await job(item)
            except MinigateError as exc:
                metrics.JOB_ERRORS.labels(job.__name__.lstrip("_")).inc()
                log.warning("job %s on %s: %s", job.__name__, item, exc.message)
            except Exception as exc:
                if database_unavailable(exc):
                    raise  # the whole pass stops: the loop backs off until it is back
                metrics.JOB_ERRORS.labels(job.__name__.lstrip("_")).inc()
                log.exception("job %s on %s failed", job.__name__, item)
        return len(ids)

    async def _purge_idempotency_keys(self) -> None:
        """Forget Idempotency-Keys past their retention, at most once per PURGE_EVERY."""
        from minigate.service.idempotency import purge_expired

        now = self.ctx.clock.now()
        if self._next_purge is not None and now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY
        purged = await purge_expired(self.ctx)
        if purged:
            log.info("forgot %d expired Idempotency-Keys", purged)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.ctx.settings.job_lease_seconds)

    async def _claim(self, model: Any, condition: Any, due_column: Any) -> list[Any]:
        now = self.ctx.clock.now()
        key = model.seq if model is Event else model.id
        async with self.ctx.sessions() as session, session.begin():
            stmt = (select(key).where(condition, due_column.is_not(None), due_column <= now)
                    .order_by(due_column).limit(BATCH))
            ids = list((await session.execute(self._lock(session, stmt))).scalars())
            if ids:
                await session.execute(update(model).where(key.in_(ids))
                                      .values({due_column.key: now + self.lease})
                                      .execution_options(synchronize_session=False))
        return ids

    async def _claim_expired(self) -> list[str]:
        """Open orders past expiry whose ``close_after`` has passed, leased like the rest:
        a close that fails at the provider is tried again when the lease runs out, not on
        every pass, and an order the provider may not close yet waits until it may."""
        now = self.ctx.clock.now()
        async with self.ctx.sessions() as session, session.begin():
            stmt = (select(Order.id)
                    .where(Order.status.in_([s.value for s in OPEN_STATES]),
                           Order.expires_at <= now,
                           or_(Order.close_after.is_(None), Order.close_after <= now))
                    .order_by(Order.expires_at).limit(BATCH))
            ids = list((await session.execute(self._lock(session, stmt))).scalars())
            if ids:
                await session.execute(update(Order).where(Order.id.in_(ids))
                                      .values(close_after=now + self.lease)
                                      .execution_options(synchronize_session=False))
        return ids

    @staticmethod
    def _lock(session: AsyncSession, stmt: Any) -> Any:
        if session.get_bind().dialect.name == "postgresql":
            return stmt.with_for_update(skip_locked=True)
        return stmt

    async def _check_payment(self, payment_id: str) -> None:
        from minigate.service.payments import check_payment

        await check_payment(self.ctx, payment_id, source="reconciler")

    async def _check_refund(self, refund_id: str) -> None:
        from minigate.service.refunds import submit_refund

        # Not yet sent (an automatic refund): send it. Sent before: ask how it went.
        await submit_refund(self.ctx, refund_id, query=True)

    async def _expire(self, order_id: str) -> None:
        from minigate.service.expiry import expire_order

        await expire_order(self.ctx, order_id)

    async def _deliver(self, seq: int) -> None:
        async with self.ctx.sessions() as session:
            event = (await session.execute(select(Event).where(Event.seq == seq))).scalar_one()
        ok, error, code = await self._post(event)
        now = self.ctx.clock.now()
        async with self.ctx.sessions() as session, session.begin():
            session.add(WebhookAttempt(event_seq=seq, attempted_at=now, status_code=code,
                                       error=error[:255]))
            row = (await session.execute(select(Event).where(Event.seq == seq))).scalar_one()
            if row.delivery_status != "pending":
                return
            row.attempts += 1
            row.last_error = error[:255]
            if ok:
                row.delivery_status, row.next_attempt_at = "delivered", None
            elif now - row.created_at >= DELIVERY_WINDOW:
                row.delivery_status, row.next_attempt_at = "parked", None
            else:
                row.next_attempt_at = now + delivery_backoff(row.attempts)
            outcome = "failed" if row.delivery_status == "pending" else row.delivery_status
            metrics.count_on_commit(session, metrics.WEBHOOK_DELIVERIES, outcome)

    async def _post(self, event: Event) -> tuple[bool, str, int | None]:
        """(delivered, error, the HTTP status code when an answer came)."""
        settings = self.ctx.settings
        allow_loopback = webhook_loopback_allowed(settings)
        try:
            host, port = destination.check_url(settings.webhook_url, allow_loopback=allow_loopback,
                                               require_https=not settings.sandbox_mode)
            addresses = await destination.check_resolved(
                host, port, allow_loopback=allow_loopback, resolver=self.resolver)
        except destination.UnsafeDestination as exc:
            return False, exc.message, None
        body = webhook_body(event)
        secrets = [s.get_secret_value() for s in settings.webhook_secrets]
        headers = {"Content-Type": "application/json", "User-Agent": "minigate-webhooks/1"}
        if secrets:
            timestamp = int(self.ctx.clock.now().timestamp())
            headers[signing.HEADER] = signing.sign(secrets, timestamp, body)
        error = "no address"
        for address in addresses:  # as a client would: the next address if one refuses
            url, pin, extensions = destination.pinned(settings.webhook_url, address)
            try:
                response = await self.http.post(url, content=body, headers=headers | pin,
                                                extensions=extensions, follow_redirects=False)
            except httpx.ConnectError:  # nothing was sent: the next address may take it
                error = "ConnectError"
                continue
            except httpx.HTTPError as exc:
                return False, f"{type(exc).__name__}", None
            if 200 <= response.status_code < 300:
                return True, "", response.status_code
            return False, f"HTTP {response.status_code}", response.status_code
        return False, error, None


class Outage:
    """The runner's view of a database outage: exponential, capped backoff between passes,
    and two log lines per outage (when it starts, and when it ends with the number of
    failed passes) instead of a traceback per pass."""

    CAP = 30.0

    def __init__(self, base: float = 1.0) -> None:
        self.base = max(base, 0.01)
        self.failures = 0
        self.since: datetime | None = None

    def failed(self, exc: BaseException, now: datetime) -> bool:
        """Count a failed pass; False if ``exc`` is not a database outage (a bug)."""
        if not database_unavailable(exc):
            return False
        if self.since is None:
            self.since = now
            log.warning("database unavailable: job runner backing off until it is back")
        self.failures += 1
        return True

    def backoff(self) -> float:
        """Seconds to wait before the next pass (the base after a bug, growing in an outage)."""
        return float(min(self.base * 2 ** max(self.failures - 1, 0), self.CAP))

    def passed(self, now: datetime) -> None:
        if self.since is not None:
            log.warning("database available again after %d failed job passes (%.0f s)",
                        self.failures, (now - self.since).total_seconds())
        self.failures, self.since = 0, None


def webhook_loopback_allowed(settings: Settings) -> bool:
    return settings.sandbox_mode and settings.sandbox.allow_loopback_webhooks


def webhook_body(event: Event) -> bytes:
    from minigate.service.views import iso

    payload = {"id": event.id, "object": "event", "type": event.type,
               "created_at": iso(event.created_at), "data": event.data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

