"""One intake pipeline for every provider's callbacks.

1. Verify the raw bytes (the connector's job; nothing is parsed before the signature holds).
2. In one short transaction: record the notification under its unique event key (a
   duplicate hits the constraint and changes nothing), compare amount / currency / ids with
   the order, apply the transition with a conditional update, write the outbox event.
3. Ack in the provider's own format. Slow work (merchant webhooks) happens later.

Callbacks that are only hints (``trusted=False``, CBTIS) never move an order: they make the
reconciler query the provider now.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from minigate.domain.events import EventType
from minigate.domain.states import OPEN_STATES, PAID_STATES, OrderStatus, check_order_transition
from minigate.errors import NotificationRejected, ProviderError
from minigate.observability.metrics import (
    ORDER_TRANSITIONS,
    count_database_unavailable,
    notification_handled,
)
from minigate.providers.base import (
    Ack,
    IncomingNotification,
    ProviderPaymentStatus,
    VerifiedNotification,
)
from minigate.service.context import ServiceContext
from minigate.service.payments import mismatch, settle_payment
from minigate.service.refunds import settle_refund
from minigate.service.views import order_view
from minigate.store import hot, repo
from minigate.store.failures import database_unavailable
from minigate.store.models import Event, Notification, Order

log = logging.getLogger("minigate.notifications")

MAX_BODY = 64 * 1024
#: An unverifiable notification brings a payment's next query forward at most this often.
HINT_INTERVAL = timedelta(seconds=30)
#: Outcomes logged at DEBUG only (every paid order has one, every provider retry another).
ROUTINE = frozenset({"paid", "duplicate", "succeeded", "noop"})


async def handle_notification(
    ctx: ServiceContext, provider: str, headers: Mapping[str, str], body: bytes
) -> Ack:
    client = ctx.provider(provider)
    started = time.perf_counter()
    if len(body) > MAX_BODY:
        notification_handled(provider, "too_large", started)
        return client.ack(False, "body too large")
    incoming = IncomingNotification({k.lower(): v for k, v in headers.items()}, body,
                                    ctx.clock.now())
    try:
        result = client.verify_notification(incoming)
        verified = await result if inspect.isawaitable(result) else result
    except NotificationRejected as exc:
        log.warning("rejected %s notification: %s", provider, exc.reason)
        try:
            await _query_sooner(ctx, provider, client, incoming, exc.reason)
        except Exception as db_exc:
            if not database_unavailable(db_exc):
                raise
            count_database_unavailable("notification")
        notification_handled(provider, "rejected", started, exc.reason)
        return client.ack(False, exc.reason)
    except ProviderError as exc:  # e.g. certificates could not be fetched: try again later
        log.warning("could not verify %s notification: %s", provider, exc.message)
        notification_handled(provider, "unverifiable", started)
        return client.ack(False, "temporarily unable to verify")
    except Exception:  # a connector bug on hostile input must not become a 500 or a change
        log.exception("verifying a %s notification failed", provider)
        notification_handled(provider, "rejected", started, "malformed")
        return client.ack(False, "malformed notification")
    try:
        outcome = await _record_and_apply(ctx, provider, verified, body)
    except IntegrityError:
        outcome = "duplicate"  # the same provider event, already recorded
    except Exception as exc:
        if not database_unavailable(exc):
            raise  # a bug: a 500, logged once; the provider sends it again anyway
        # Rolled back (or never begun): a failure ack makes the provider send it again.
        log.warning("could not record %s notification: database unavailable", provider)
        count_database_unavailable("notification")
        notification_handled(provider, "database_unavailable", started)
        return client.ack(False, "temporarily unable to record")
    # The expected outcome is routine and frequent; anything else is worth a line.
    log.log(logging.DEBUG if outcome in ROUTINE else logging.INFO,
            "%s notification %s: %s", provider, verified.event_key, outcome)
    notification_handled(provider, outcome, started)
    return client.ack(True)


async def _query_sooner(
    ctx: ServiceContext, provider: str, client: object, incoming: IncomingNotification,
    reason: str,
) -> None:
    """An unverifiable notification never moves an order, but if it names one of our open
    payments, ask the provider about that payment now — at most once per HINT_INTERVAL."""
    hint = getattr(client, "notification_hint", None)
    number = hint(incoming) if hint is not None else None
    if not number:
        return
    now = ctx.clock.now()
    async with ctx.sessions() as session, session.begin():
        payment = await repo.payment_by_number(session, provider, number)
        if payment is None or payment.status not in ("created", "pending", "unknown"):
            return
        if payment.next_check_at is not None and payment.next_check_at <= now + HINT_INTERVAL:
            return  # a check is due soon anyway
        if await _hinted_since(session, payment.order_id, now - HINT_INTERVAL):
            return  # a flood of forged callbacks must not become a flood of provider queries
        payment.next_check_at = now
        repo.add_event(session, EventType.NOTIFICATION_UNVERIFIED, now,
                       order_id=payment.order_id, data={"reason": reason[:200]},
                       webhooks=False)
    ctx.kick()


async def _hinted_since(session: AsyncSession, order_id: str, since: datetime) -> bool:
    stmt = select(Event.seq).where(
        Event.order_id == order_id, Event.type == EventType.NOTIFICATION_UNVERIFIED.value,
        Event.created_at > since).limit(1)
    return (await session.execute(stmt)).first() is not None


async def _record_and_apply(
    ctx: ServiceContext, provider: str, verified: VerifiedNotification, body: bytes
) -> str:
    """Apply the provider's word and record the notification under its unique event key,
    atomically: the common case optimistically (``_settle_paid``), anything else in one
    locked transaction. A duplicate fails that insert, which undoes everything it did (on
    PostgreSQL the locked path first waits for the order's row lock, so it sees the outcome
    of the original and does nothing anyway)."""
    now = ctx.clock.now()
    if verified.trusted and verified.payment is not None:
        fast = await ctx.hot.steps(_settle_paid(ctx, provider, verified, body, now),
                                   commit_on_loop=True)  # hot, and batched under load
        if fast is not None:
            if fast == "paid":
                ORDER_TRANSITIONS.labels(OrderStatus.PAID.value).inc()  # committed
                if ctx.webhooks_enabled:
                    ctx.kick()  # order.paid to deliver
            return fast
    async with ctx.sessions() as session, session.begin():
        order_id, outcome = await _apply(ctx, session, provider, verified)
        session.add(Notification(provider=provider, event_key=verified.event_key[:160],
                                 order_id=order_id, outcome=outcome, body=body,
                                 received_at=now))
    if outcome == "query_scheduled":
        ctx.kick()
    return outcome


_PAID_WORD = (ProviderPaymentStatus.PAID, ProviderPaymentStatus.REFUNDED)
#: The paid transition as one statement: the order, conditional on its state and on the
#: version the decision was made on; then, only if it moved, the payment, the outbox event
#: and the notification record (a duplicate event key fails the whole statement).
_PAID_WRITES = hot.Many(hot.move_order(OrderStatus.PAID, OPEN_STATES, "paid_at",
                                       expect_version=True),
                        hot.UPDATE_PAYMENT_PAID, hot.INSERT_EVENT, hot.INSERT_NOTIFICATION,
                        guard=True)


def _record(provider: str, verified: VerifiedNotification, order_id: str | None,
            outcome: str, body: bytes, now: datetime) -> dict[str, Any]:
    return {"provider": provider, "event_key": verified.event_key[:160], "order_id": order_id,
            "outcome": outcome, "body": body, "received_at": now}


def _settle_paid(
    ctx: ServiceContext, provider: str, verified: VerifiedNotification, body: bytes,
    now: datetime,
) -> hot.Work[str | None]:
    """The common case on the lean path (``store/hot.py``), in two steps that are each
    atomic (``HotStore.steps``: on PostgreSQL two autocommitted round trips, no
    ``BEGIN``/``COMMIT``; on SQLite one transaction):

    1. read the payment with its order (no lock);
    2. decide with the state table and the amount rules, then write the paid transition,
       the payment, the outbox event and the notification record as **one** statement
       whose order ``UPDATE`` is conditional on the status and on the version that was
       read, and whose other writes happen only if that ``UPDATE`` did (an optimistic
       lock: the row lock is held for the one statement, not across a round trip). If
       anything changed the order in between, nothing is written and the general path
       (``_apply``, with the row lock) decides again. A duplicate event key fails the
       statement and writes nothing.

    A notification for an unknown payment is recorded as ``unmatched``, one for an order
    already paid as ``noop``: one ``INSERT`` each, which only records. Anything else — a
    mismatch, a failure or close, an order already closed — returns None having changed
    nothing, and takes the general path. May run on the SQLite connection's thread: no
    awaits, no ``ctx.kick()``."""
    state = verified.payment
    assert state is not None
    rows = yield hot.LOCATE_PAYMENT, {"provider": provider, "number": state.provider_order_no}
    order_id, outcome = None, "unmatched"
    if rows:
        order_row, payment = hot.split(rows[0])
        assert payment is not None
        # A plain record, not an ORM object (which costs more than the rest of the rules):
        # the rules below only read its attributes.
        order = cast(Order, SimpleNamespace(**order_row))
        status = OrderStatus(order.status)
        if (state.status not in _PAID_WORD or mismatch(ctx, order, state)
                or status not in OPEN_STATES | PAID_STATES):
            raise hot.Rollback(None)
        order_id, outcome = order.id, "noop"
        if status in OPEN_STATES:
            check_order_transition(status, OrderStatus.PAID)
            order.status, order.paid_at, order.updated_at = OrderStatus.PAID.value, now, now
            event = repo.event_values(EventType.ORDER_PAID, now, order_id=order.id,
                                      data={"order": order_view(order, detail=False)},
                                      webhooks=ctx.webhooks_enabled)
            moved, *_ = yield _PAID_WRITES, [
                {"order_id": order.id, "now": now, "paid_at": now, "version": order.version},
                {"payment_id": payment["id"], "now": now,
                 "provider_txn_id": state.provider_txn_id or None},
                event, _record(provider, verified, order.id, "paid", body, now)]
            if moved != 1:  # changed since it was read (nothing written): decide again
                raise hot.Rollback(None)
            return "paid"
    yield hot.INSERT_NOTIFICATION, _record(provider, verified, order_id, outcome, body, now)
    return outcome


async def _apply(
    ctx: ServiceContext, session: AsyncSession, provider: str, verified: VerifiedNotification
) -> tuple[str | None, str]:
    """(order id, outcome) of a verified notification, applied inside ``session``."""
    now = ctx.clock.now()
    if verified.payment is not None:
        found = await repo.payment_with_order(session, provider,
                                              verified.payment.provider_order_no, lock=True)
        if found is None:
            return None, "unmatched"
        payment, order = found
        if not verified.trusted:
            payment.next_check_at = now
            return order.id, "query_scheduled"
        return order.id, await settle_payment(ctx, session, order, payment, verified.payment,
                                              source="notification")
    if verified.refund is not None:
        refund = await repo.refund_by_number(session, provider,
                                             verified.refund.provider_refund_no)
        if refund is None:
            return None, "unmatched"
        if not verified.trusted:
            refund.next_check_at = now
            return refund.order_id, "query_scheduled"
        return refund.order_id, await settle_refund(ctx, session, refund, verified.refund,
                                                    source="notification")
    return None, "unmatched"
