"""Create, read, list and close orders."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from minigate.domain.events import DELIVERABLE, EventType
from minigate.domain.ids import new_id, new_secret
from minigate.domain.money import Money
from minigate.domain.states import OPEN_STATES, OrderStatus
from minigate.errors import Conflict, InvalidRequest, NotFound
from minigate.faults import crash_point
from minigate.providers.base import Channel, PaymentRef
from minigate.service.context import ServiceContext, token_hash
from minigate.service.idempotency import Attempt, key_taken
from minigate.service.views import event_view, order_view
from minigate.store import repo
from minigate.store.hot import (
    COMPLETE_KEY,
    INSERT_EVENT,
    INSERT_KEY,
    INSERT_ORDER,
    Many,
    Work,
    record,
    values,
)
from minigate.store.models import Event, Order, Payment

MIN_TTL, MAX_TTL = 60, 7 * 24 * 3600


@dataclass(frozen=True)
class NewOrder:
    merchant_reference: str
    amount: Money
    description: str
    channel: Channel
    provider: str | None = None
    expires_in: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


async def create_order(ctx: ServiceContext, cmd: NewOrder,
                       attempt: Attempt | None = None) -> dict[str, Any]:
    """Record a new order; the provider is called later, at pay time (it needs the openid).

    ``merchant_reference`` is unique: a second order for it is a 409 naming the first.
    """
    client = ctx.provider_for(cmd.channel, cmd.provider)
    currencies: frozenset[str] = getattr(client, "currencies", frozenset())
    if currencies and cmd.amount.currency not in currencies:
        raise InvalidRequest(
            f"{client.name} charges this account in {', '.join(sorted(currencies))}, "
            f"not {cmd.amount.currency}", param="currency", code="currency_not_supported")
    ttl = cmd.expires_in if cmd.expires_in is not None else ctx.settings.order_ttl_seconds
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidRequest(f"expires_in must be between {MIN_TTL} and {MAX_TTL} seconds",
                             param="expires_in")
    now = ctx.clock.now()
    token = "ct_" + new_secret()
    order = record(
        Order, id=new_id("ord"), merchant_reference=cmd.merchant_reference,
        amount_minor=cmd.amount.minor, currency=cmd.amount.currency,
        description=cmd.description, channel=cmd.channel.value, provider=client.name,
        status=OrderStatus.CREATED.value, client_token_hash=token_hash(token),
        refunded_minor=0, refund_reserved_minor=0, metadata_json=cmd.metadata, flagged=0,
        expires_at=now + timedelta(seconds=ttl), created_at=now, updated_at=now, version=1,
    )
    try:
        view = await _create(ctx, order, token, cmd, attempt, now)
    except IntegrityError:
        if attempt is not None and attempt.fresh is not None:
            raise  # maybe the key is stored already: run_idempotent finds out
        existing = await _order_id_by_reference(ctx, cmd.merchant_reference)
        if existing is None:
            raise
        raise Conflict(f"order {existing} already has merchant_reference "
                       f"{cmd.merchant_reference!r}", param="merchant_reference",
                       code="duplicate_merchant_reference") from None
    crash_point("order.committed")
    return view


_CREATE = Many(INSERT_ORDER, INSERT_EVENT)
#: The key's stored answer first: the order and its event are written only if the key was
#: still this attempt's to complete (one statement, so atomic with no transaction around).
_CREATE_KEYED = Many(COMPLETE_KEY, INSERT_ORDER, INSERT_EVENT, guard=True)
#: A key not stored yet (``run_idempotent(one_statement=True)``): the key, done, with its
#: answer, the order and its event; a key already stored fails the statement as a whole.
_CREATE_FRESH = Many(INSERT_KEY, INSERT_ORDER, INSERT_EVENT)


async def _create(ctx: ServiceContext, order: Order, token: str, cmd: NewOrder,
                  attempt: Attempt | None, now: datetime) -> dict[str, Any]:
    """The order, its event and the Idempotency-Key's stored answer in one statement (a
    retry after any crash finds either all or none), on the lean path (``store/hot.py``;
    on PostgreSQL one autocommitted round trip). Every value is known before it starts."""
    event = repo.event_values(EventType.ORDER_CREATED, now, order_id=order.id,
                              data={"amount": cmd.amount.decimal_str()}, webhooks=False)
    view = order_view(order, None, (), [record(Event, **event)])
    view["client_token"] = token
    completion = attempt.completion(201, view) if attempt is not None else None

    def work() -> Work[None]:
        if completion is None:
            yield _CREATE, [values(order), event]
            return
        if attempt is not None and attempt.fresh is not None:
            yield _CREATE_FRESH, [completion, values(order), event]
            return
        stored, *_ = yield _CREATE_KEYED, [completion, values(order), event]
        if stored != 1:  # nothing was written
            raise key_taken()

    await ctx.hot.steps(work())
    ctx.fresh_orders.add(order)  # committed as it stands: for the client's pay call
    if attempt is not None and completion is not None:
        attempt.completed(completion)
    return view


async def _order_id_by_reference(ctx: ServiceContext, reference: str) -> str | None:
    async with ctx.sessions() as session:
        found = await session.execute(
            select(Order.id).where(Order.merchant_reference == reference))
        return found.scalar_one_or_none()


async def get_order(ctx: ServiceContext, order_id: str) -> dict[str, Any]:
    async with ctx.sessions() as session:
        order = await repo.get_order(session, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}", param="id")
        payment = await repo.payment_for_order(session, order_id)
        refunds = await repo.refunds_for_order(session, order_id)
        events = await repo.events_for_order(session, order_id)
    return order_view(order, payment, refunds, events)


#: ``<created_at in microseconds since 1970>.<order id>``: every string of this form is a
#: position in the list (the OpenAPI states the pattern), so no valid cursor is refused.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[A-Za-z0-9_-]{1,64}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode_cursor(order: Order) -> str:
    return f"{(order.created_at - _EPOCH) // _MICROSECOND}.{order.id}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    if re.fullmatch(CURSOR_PATTERN, cursor) is None:
        raise InvalidRequest("cursor is not valid", param="cursor")
    micros, _, oid = cursor.partition(".")
    return _EPOCH + int(micros) * _MICROSECOND, oid


async def list_orders(
    ctx: ServiceContext, *, status: str | None, provider: str | None, limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Newest first, keyset-paginated on (created_at, id)."""
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100", param="limit")
    if status is not None and status not in {s.value for s in OrderStatus}:
        raise InvalidRequest(f"unknown status {status!r}", param="status")
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1)
    if status:
        stmt = stmt.where(Order.status == status)
    if provider:
        stmt = stmt.where(Order.provider == provider)
    if cursor:
        created, oid = _decode_cursor(cursor)
        stmt = stmt.where(
            (Order.created_at < created) | ((Order.created_at == created) & (Order.id < oid))
        )
    async with ctx.sessions() as session:
        rows = list((await session.execute(stmt)).scalars().all())
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "object": "list",
        "data": [order_view(o, detail=False) for o in rows],
        "has_more": more,
        "next_cursor": _encode_cursor(rows[-1]) if more and rows else None,
    }


async def close_order(ctx: ServiceContext, order_id: str, *, reason: str = "merchant") -> dict[str, Any]:
    """Close an unpaid order, at the provider first when it has a payment there."""
    async with ctx.sessions() as session:
        order = await repo.get_order(session, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}", param="id")
        payment = await repo.payment_for_order(session, order_id)
    if OrderStatus(order.status) not in OPEN_STATES:
        if order.status == OrderStatus.CLOSED:
            return await get_order(ctx, order_id)
        raise Conflict(f"order is {order.status}; only unpaid orders can be closed",
                       code="order_not_closable")
    if payment is not None:
        await close_at_provider(ctx, order, payment)
    await mark_closed(ctx, order, reason)
    return await get_order(ctx, order_id)


async def close_at_provider(ctx: ServiceContext, order: Order, payment: Payment) -> None:
    client = ctx.provider(payment.provider)
    if not client.supports_close:
        return
    age = (ctx.clock.now() - payment.created_at).total_seconds()
    if age < client.min_close_age:
        raise Conflict(
            f"{client.name} does not allow closing an order in its first "
            f"{client.min_close_age} seconds; try again in {int(client.min_close_age - age) + 1} s",
            code="close_too_early",
        )
    ref = PaymentRef(payment.provider_order_no, Money(order.amount_minor, order.currency),
                     payment.created_at, payment.provider_txn_id)
    await client.close_payment(ref)


async def mark_closed(ctx: ServiceContext, order: Order, reason: str) -> bool:
    now = ctx.clock.now()
    async with ctx.sessions() as session, session.begin():
        fresh = await repo.get_order(session, order.id)
        assert fresh is not None
        moved = await repo.move_order(session, fresh, OrderStatus.CLOSED, now,
                                      allowed_from=OPEN_STATES)
        if moved:
            payment = await repo.payment_for_order(session, order.id)
            if payment is not None and payment.status in ("created", "pending", "unknown"):
                payment.status, payment.updated_at = "closed", now
                payment.next_check_at = None
            repo.add_event(session, EventType.ORDER_CLOSED, now, order_id=order.id,
                           data={"order": order_view(fresh, detail=False), "reason": reason},
                           webhooks=ctx.webhooks_enabled)
    if moved and ctx.webhooks_enabled:
        ctx.kick()  # order.closed to deliver
    return moved


async def list_events(ctx: ServiceContext, *, after: int | None, limit: int) -> dict[str, Any]:
    """Merchant-facing events in the order they happened (``after`` = last seen sequence)."""
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100", param="limit")
    stmt = select(Event).where(Event.type.in_([t.value for t in DELIVERABLE]))
    if after is not None:
        stmt = stmt.where(Event.seq > after)
    stmt = stmt.order_by(Event.seq).limit(limit + 1)
    async with ctx.sessions() as session:
        rows = list((await session.execute(stmt)).scalars().all())
    more = len(rows) > limit
    return {"object": "list", "data": [event_view(e) for e in rows[:limit]], "has_more": more}
