"""Expiry: an order not paid by ``expires_at`` is closed at the provider, then locally."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update

from minigate.domain.states import OPEN_STATES, OrderStatus
from minigate.errors import Conflict, ProviderError
from minigate.service.context import ServiceContext
from minigate.service.orders import close_at_provider, mark_closed
from minigate.service.payments import check_payment
from minigate.store import repo
from minigate.store.models import Order

log = logging.getLogger("minigate.expiry")


async def expire_order(ctx: ServiceContext, order_id: str) -> str:
    """Close one expired order. A last query first: a payment may have just gone through."""
    async with ctx.sessions() as session:
        order = await repo.get_order(session, order_id)
        payment = await repo.payment_for_order(session, order_id)
    if order is None or OrderStatus(order.status) not in OPEN_STATES:
        return "noop"
    if ctx.clock.now() < order.expires_at:
        return "not_due"
    if payment is not None:
        client = ctx.provider(payment.provider)
        age = (ctx.clock.now() - payment.created_at).total_seconds()
        if client.supports_close and age < client.min_close_age:
            # e.g. WeChat's 5 minutes: no query or close until then
            await _close_after(ctx, order_id, payment.created_at
                               + timedelta(seconds=client.min_close_age))
            return "too_early"
        try:
            outcome = await check_payment(ctx, payment.id, source="expiry")
        except ProviderError as exc:
            log.info("expiry query for %s failed (%s); closing anyway", order_id, exc.message)
            outcome = "error"
        if outcome in ("paid", "mismatch", "failed", "closed"):
            return outcome
        try:
            await close_at_provider(ctx, order, payment)
        except Conflict:
            return "too_early"  # the provider's minimum age: the next lease will close it
    await mark_closed(ctx, order, "expired")
    return "closed"


async def _close_after(ctx: ServiceContext, order_id: str, when: datetime) -> None:
    """Do not try to close ``order_id`` again before ``when``."""
    async with ctx.sessions() as session, session.begin():
        await session.execute(update(Order).where(Order.id == order_id)
                              .values(close_after=when)
                              .execution_options(synchronize_session=False))
