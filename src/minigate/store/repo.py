"""Repository helpers. They never commit: the service layer owns every transaction.

State changes are conditional UPDATEs (``… WHERE status IN (…)``): of several processes
racing to move the same order, exactly one sees ``rowcount == 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from minigate.domain.events import DELIVERABLE, EventType
from minigate.domain.ids import new_id
from minigate.domain.states import ORDER_TRANSITIONS, OrderStatus, check_order_transition
from minigate.observability import metrics
from minigate.store.models import Event, Order, Payment, Refund


async def get_order(session: AsyncSession, order_id: str, *, lock: bool = False) -> Order | None:
    stmt = select(Order).where(Order.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def payment_for_order(session: AsyncSession, order_id: str) -> Payment | None:
    stmt = select(Payment).where(Payment.order_id == order_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def payment_with_order(
    session: AsyncSession, provider: str, number: str, *, lock: bool = False
) -> tuple[Payment, Order] | None:
    """A payment by its provider number with its order, in one query; ``lock`` takes the
    order's row lock (PostgreSQL), which serialises everyone settling that order."""
    stmt = (select(Payment, Order).join(Order, Order.id == Payment.order_id)
            .where(Payment.provider == provider, Payment.provider_order_no == number))
    if lock:
        stmt = stmt.with_for_update(of=Order)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def payment_by_number(session: AsyncSession, provider: str, number: str) -> Payment | None:
    stmt = select(Payment).where(Payment.provider == provider, Payment.provider_order_no == number)
    return (await session.execute(stmt)).scalar_one_or_none()


async def refund_by_number(session: AsyncSession, provider: str, number: str) -> Refund | None:
    stmt = select(Refund).where(Refund.provider == provider, Refund.provider_refund_no == number)
    return (await session.execute(stmt)).scalar_one_or_none()


async def refunds_for_order(session: AsyncSession, order_id: str) -> Sequence[Refund]:
    stmt = select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at, Refund.id)
    return (await session.execute(stmt)).scalars().all()


async def events_for_order(session: AsyncSession, order_id: str) -> Sequence[Event]:
    stmt = select(Event).where(Event.order_id == order_id).order_by(Event.seq)
    return (await session.execute(stmt)).scalars().all()


async def move_order(
    session: AsyncSession,
    order: Order,
    target: OrderStatus,
    now: datetime,
    *,
    allowed_from: Iterable[OrderStatus] | None = None,
    **values: Any,
) -> bool:
    """Move ``order`` to ``target`` if it is still in a state the table allows.

    Returns False when another writer got there first (the row's status changed under us).
    """
    current = OrderStatus(order.status)
    sources = set(allowed_from) if allowed_from is not None else {current}
    sources = {s for s in sources if target in ORDER_TRANSITIONS[s]}
    if current in sources:
        check_order_transition(current, target)
    stmt = (
        update(Order)
        .where(Order.id == order.id, Order.status.in_([s.value for s in sources]))
        .values(status=target.value, updated_at=now, version=Order.version + 1, **values)
        .returning(Order)  # the moved row, loaded into ``order``: no second SELECT
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    moved = (await session.execute(stmt)).scalar_one_or_none() is not None
    if moved:
        metrics.count_on_commit(session, metrics.ORDER_TRANSITIONS, target.value)
    return moved


def add_event(
    session: AsyncSession,
    type_: EventType,
    now: datetime,
    *,
    order_id: str | None,
    data: dict[str, Any],
    webhooks: bool,
) -> Event:
    """Timeline entry and, for merchant-facing types, an outbox row for webhook delivery."""
    event = Event(**event_values(type_, now, order_id=order_id, data=data, webhooks=webhooks),
                  attempts=0, last_error="")
    session.add(event)
    outcome = _REFUND_OUTCOMES.get(type_)
    if outcome is not None:
        metrics.count_on_commit(session, metrics.REFUNDS, outcome)
    return event


def event_values(type_: EventType, now: datetime, *, order_id: str | None,
                 data: dict[str, Any], webhooks: bool) -> dict[str, Any]:
    """An event row's values (the ORM and ``store/hot.py`` write the same row)."""
    deliver = webhooks and type_ in DELIVERABLE
    return {"id": new_id("evt"), "type": type_.value, "order_id": order_id, "data": data,
            "deliver": 1 if deliver else 0,
            "delivery_status": "pending" if deliver else "none",
            "next_attempt_at": now if deliver else None, "created_at": now}


_REFUND_OUTCOMES = {EventType.REFUND_CREATED: "requested",
                    EventType.REFUND_SUCCEEDED: "succeeded", EventType.REFUND_FAILED: "failed"}
