"""Refunds against a ledger that never lets the sum of live refunds exceed what was paid.

The guard is one conditional UPDATE on the order: ``refund_reserved_minor`` grows by the
refund's amount only ``WHERE refund_reserved_minor + amount <= amount_minor``. Concurrent
requests that together exceed the paid amount lose that race and get a 422. A failed refund
gives its reservation back; a succeeded one also adds to ``refunded_minor``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from minigate.domain.events import EventType
from minigate.domain.ids import new_id, provider_number
from minigate.domain.money import Money, parse_minor
from minigate.domain.states import (
    OrderStatus,
    RefundStatus,
    check_refund_transition,
    status_after_refunds,
)
from minigate.errors import Conflict, NotFound, ProviderError, ProviderTimeout, Unprocessable
from minigate.faults import crash_point
from minigate.providers.base import ProviderRefundStatus, RefundRequest, RefundState
from minigate.service.context import ServiceContext
from minigate.service.idempotency import Attempt
from minigate.service.payments import next_check, payment_ref
from minigate.service.views import order_view, refund_view
from minigate.store import repo
from minigate.store.failures import database_unavailable
from minigate.store.models import Order, Refund

log = logging.getLogger("minigate.refunds")

REFUNDABLE = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.PAID_AFTER_CLOSE)
R = ProviderRefundStatus
OPEN_REFUND = (RefundStatus.PENDING.value, RefundStatus.UNKNOWN.value)


RESERVED = "refund_reserved"


async def create_refund(
    ctx: ServiceContext, order_id: str, amount: str | None, reason: str = "",
    attempt: Attempt | None = None,
) -> dict[str, Any]:
    """Reserve the amount, record the refund with its provider number, then ask the provider.

    With an Idempotency-Key the reservation also advances the key's recovery point, in the
    same transaction: a retry after a crash (or a database outage) anywhere later finds this
    refund and resumes it — it never reserves or sends a second one. Once the reservation
    is committed the refund exists: whatever goes wrong while sending it, the answer is that
    refund, still pending, and the reconciler sends or settles it under the same number.
    """
    if attempt is not None and attempt.resumed:
        return await resume_refund(ctx, order_id, attempt)
    refund = await _reserve(ctx, order_id, amount, reason, attempt)
    crash_point("refund.reserved")
    try:
        return await submit_refund(ctx, refund.id)
    except Exception as exc:
        if database_unavailable(exc):
            raise  # a 503: the retry resumes from the recovery point
        log.exception("refund %s: sending failed; the reconciler will send it", refund.id)
        return refund_view(refund)


async def resume_refund(ctx: ServiceContext, order_id: str, attempt: Attempt) -> dict[str, Any]:
    """An earlier attempt with this key reserved a refund: answer with that refund — sent
    first if that attempt died before it could (the send is claimed, so the reconciler and
    this call never both send), or, if its outcome is open, as the provider now reports it
    under the same number."""
    async with ctx.sessions() as session:
        refund = await session.get(Refund, attempt.resource_id)
    if refund is None or refund.order_id != order_id or attempt.recovery_point != RESERVED:
        raise Unprocessable("Idempotency-Key was already used with a different request",
                            param="Idempotency-Key", code="idempotency_key_reused")
    if refund.submitted_at is None or refund.status in OPEN_REFUND:
        return await submit_refund(ctx, refund.id, query=True)  # sends if never sent
    return refund_view(refund)


async def _reserve(ctx: ServiceContext, order_id: str, amount: str | None, reason: str,
                   attempt: Attempt | None) -> Refund:
    now = ctx.clock.now()
    async with ctx.sessions() as session, session.begin():
        order = await repo.get_order(session, order_id, lock=True)
        if order is None:
            raise NotFound(f"no order {order_id}", param="id")
        if OrderStatus(order.status) not in REFUNDABLE:
            raise Conflict(f"order is {order.status}; only paid orders can be refunded",
                           code="order_not_refundable")
        minor = (parse_minor(amount, order.currency) if amount is not None
                 else order.amount_minor - order.refund_reserved_minor)
        if minor <= 0:
            raise Unprocessable("refund amount must be greater than zero", param="amount",
                                code="invalid_refund_amount")
        refund = await reserve_refund(ctx, session, order, minor, reason, now)
        if refund is None:
            raise Unprocessable("refund exceeds the amount that is still refundable",
                                param="amount", code="refund_exceeds_paid")
        if attempt is not None:
            await session.flush()
            await attempt.advance(session, RESERVED, refund.id)
    return refund


async def reserve_refund(
    ctx: ServiceContext, session: AsyncSession, order: Order, minor: int, reason: str,
    now: datetime,
) -> Refund | None:
    """Reserve ``minor`` on the order's ledger and record the refund, or None if it would
    take the live refunds above the paid amount. Inside the caller's transaction."""
    reserved = await session.execute(
        update(Order)
        .where(Order.id == order.id, Order.refund_reserved_minor + minor <= Order.amount_minor)
        .values(refund_reserved_minor=Order.refund_reserved_minor + minor)
        .execution_options(synchronize_session=False)
    )
    if reserved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    refund = Refund(
        id=new_id("rfd"), order_id=order.id, provider=order.provider,
        provider_refund_no=provider_number("RF"), amount_minor=minor, currency=order.currency,
        status=RefundStatus.PENDING.value, reason=reason[:255], failure_reason="", checks=0,
        next_check_at=now + timedelta(seconds=30), submitted_at=None, created_at=now,
        updated_at=now,
    )
    session.add(refund)
    repo.add_event(session, EventType.REFUND_CREATED, now, order_id=order.id,
                   data={"refund": refund_view(refund)}, webhooks=False)
    return refund


async def _refund_request(ctx: ServiceContext, refund: Refund) -> RefundRequest:
    async with ctx.sessions() as session:
        order = await repo.get_order(session, refund.order_id)
        payment = await repo.payment_for_order(session, refund.order_id)
    assert order is not None and payment is not None
    return RefundRequest(payment=payment_ref(order, payment),
                         provider_refund_no=refund.provider_refund_no,
                         amount=Money(refund.amount_minor, refund.currency),
                         reason=refund.reason, notify_url=ctx.notify_url(refund.provider),
                         requested_at=refund.created_at)


async def submit_refund(ctx: ServiceContext, refund_id: str, *, query: bool = False) -> dict[str, Any]:
    """Send (or, with ``query``, look up) a refund at the provider and apply the answer."""
    async with ctx.sessions() as session:
        refund = await session.get(Refund, refund_id)
    if refund is None:
        raise NotFound(f"no refund {refund_id}")
    request = await _refund_request(ctx, refund)
    client = ctx.provider(refund.provider)
    if refund.submitted_at is None:
        # Claim the first send: of the API, a resumed retry and the reconciler, exactly one
        # sends; the others ask the provider how it went (under the same number).
        async with ctx.sessions() as session, session.begin():
            claimed = await session.execute(
                update(Refund).where(Refund.id == refund_id, Refund.submitted_at.is_(None))
                .values(submitted_at=ctx.clock.now())
                .execution_options(synchronize_session=False))
        query = claimed.rowcount != 1  # type: ignore[attr-defined]
        crash_point("refund.claimed")
    try:
        state = await (client.query_refund(request) if query else client.refund(request))
    except ProviderTimeout:
        state = RefundState(refund.provider_refund_no, R.UNKNOWN, detail="provider timed out")
    except ProviderError as exc:
        # Only the provider's own "no" to the refund call fails a refund (and frees its
        # amount). A failed query, or an answer we could not read or verify, says nothing
        # about the money: keep asking.
        refused = not query and exc.provider_code is not None and not exc.retryable
        state = RefundState(refund.provider_refund_no, R.FAILED if refused else R.UNKNOWN,
                            detail=exc.message)
    crash_point("refund.answered")
    async with ctx.sessions() as session, session.begin():
        row = await session.get(Refund, refund_id)
        assert row is not None
        outcome = await settle_refund(ctx, session, row, state,
                                      source="query" if query else "refund")
        if outcome == "noop":
            # A notification may have settled it since ``row`` was read (it can race the
            # provider's synchronous answer): report and schedule from the stored state.
            await session.refresh(row)
        if row.status in OPEN_REFUND:
            row.checks += 1
            row.next_check_at = next_check(ctx, row.checks)
    ctx.kick()
    return refund_view(row)


async def settle_refund(
    ctx: ServiceContext, session: AsyncSession, refund: Refund, state: RefundState, *,
    source: str,
) -> str:
    """Apply the provider's word about a refund, inside the caller's transaction."""
    now = ctx.clock.now()
    if state.status is R.SUCCEEDED:
        if not await _close_refund(session, refund, RefundStatus.SUCCEEDED, now, state):
            return "noop"
        await _book_refund(ctx, session, refund, now)
        return "succeeded"
    if state.status is R.FAILED:
        if not await _close_refund(session, refund, RefundStatus.FAILED, now, state):
            return "noop"
        await session.execute(
            update(Order).where(Order.id == refund.order_id)
            .values(refund_reserved_minor=Order.refund_reserved_minor - refund.amount_minor)
            .execution_options(synchronize_session=False)
        )
        refund.failure_reason = state.detail[:255]
        repo.add_event(session, EventType.REFUND_FAILED, now, order_id=refund.order_id,
                       data={"refund": refund_view(refund)}, webhooks=ctx.webhooks_enabled)
        return "failed"
    if state.status is R.UNKNOWN and await _reopen_refund(
            session, refund, RefundStatus.PENDING, RefundStatus.UNKNOWN, now):
        return "unknown"
    if state.status is R.PENDING and await _reopen_refund(
            session, refund, RefundStatus.UNKNOWN, RefundStatus.PENDING, now):
        return "pending"
    return "noop"


async def _reopen_refund(
    session: AsyncSession, refund: Refund, current: RefundStatus, target: RefundStatus,
    now: datetime,
) -> bool:
    """Move an open refund between pending and unknown, only if it is still ``current``.

    Conditional, like :func:`_close_refund`: a notification may have settled the refund
    since ``refund`` was read, and writing the stale row back would reopen a succeeded
    refund, which the next query would then book a second time.
    """
    if refund.status != current.value:
        return False
    check_refund_transition(current, target)
    result = await session.execute(
        update(Refund)
        .where(Refund.id == refund.id, Refund.status == current.value)
        .values(status=target.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(refund)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _close_refund(
    session: AsyncSession, refund: Refund, target: RefundStatus, now: datetime,
    state: RefundState,
) -> bool:
    result = await session.execute(
        update(Refund)
        .where(Refund.id == refund.id, Refund.status.in_(OPEN_REFUND))
        .values(status=target.value, updated_at=now, next_check_at=None,
                provider_refund_id=state.provider_refund_id or refund.provider_refund_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(refund)
    return True


async def _book_refund(ctx: ServiceContext, session: AsyncSession, refund: Refund,
                       now: datetime) -> None:
    await session.execute(
        update(Order).where(Order.id == refund.order_id)
        .values(refunded_minor=Order.refunded_minor + refund.amount_minor)
        .execution_options(synchronize_session=False)
    )
    order = await repo.get_order(session, refund.order_id)
    assert order is not None
    await session.refresh(order)
    target = status_after_refunds(order.amount_minor, order.refunded_minor)
    await repo.move_order(session, order, target, now, allowed_from=REFUNDABLE)
    repo.add_event(session, EventType.REFUND_SUCCEEDED, now, order_id=refund.order_id,
                   data={"refund": refund_view(refund),
                         "order": order_view(order, detail=False)},
                   webhooks=ctx.webhooks_enabled)


async def get_refund(ctx: ServiceContext, refund_id: str) -> dict[str, Any]:
    async with ctx.sessions() as session:
        refund = await session.get(Refund, refund_id)
    if refund is None:
        raise NotFound(f"no refund {refund_id}", param="id")
    return refund_view(refund)


