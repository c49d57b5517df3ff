"""Pay (client), status (client), and settling a payment from the provider's word."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from minigate.domain.events import EventType
from minigate.domain.ids import new_id, provider_number
from minigate.domain.money import Money
from minigate.domain.states import (
    DEAD_STATES,
    OPEN_STATES,
    PAID_STATES,
    OrderStatus,
    check_order_transition,
)
from minigate.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderTimeout,
)
from minigate.observability.metrics import ORDER_TRANSITIONS
from minigate.providers.base import (
    Channel,
    CreatedPayment,
    PaymentRef,
    PaymentRequest,
    PaymentState,
    ProviderPaymentStatus,
)
from minigate.service.context import ServiceContext, token_hash
from minigate.service.views import order_view
from minigate.store import hot, repo
from minigate.store.models import Order, Payment

log = logging.getLogger("minigate.payments")

#: How long pay parameters are reused before a fresh prepay is asked for (WeChat: 2 h).
PARAMS_TTL = timedelta(hours=2)

P = ProviderPaymentStatus


def next_check(ctx: ServiceContext, checks: int) -> datetime:
    """When to query a pending payment or refund next: the configured schedule, then its
    last interval again and again (until expiry closes the order)."""
    schedule = ctx.settings.reconcile_schedule
    return ctx.clock.now() + timedelta(seconds=schedule[min(checks, len(schedule) - 1)])


async def _authorised_order(
    ctx: ServiceContext, order_id: str, client_token: str
) -> tuple[Order, Payment | None]:
    """The order (and its payment) if ``client_token`` is this order's token."""
    rows = await ctx.hot.read(hot.ORDER_WITH_PAYMENT, order_id=order_id)
    return _authorised(_rows(rows[0]) if rows else None, client_token)


def _authorised(found: tuple[Order, Payment | None] | None,
                client_token: str) -> tuple[Order, Payment | None]:
    given = token_hash(client_token or "")
    # Same answer (and same work) for "no such order" and "wrong token": no probing.
    expected = found[0].client_token_hash if found is not None else token_hash("\x00")
    if not hmac.compare_digest(given, expected) or found is None:
        raise AuthenticationError("client_token does not match this order", param="client_token",
                                  code="invalid_client_token")
    return found


def _rows(row: hot.Row) -> tuple[Order, Payment | None]:
    """The order and its payment from a joined row of ``store/hot.py``, as records."""
    order_row, payment_row = hot.split(row)
    return (hot.record(Order, **order_row),
            hot.record(Payment, **payment_row) if payment_row is not None else None)


async def client_status(ctx: ServiceContext, order_id: str, client_token: str) -> dict[str, Any]:
    """What the mini program may know: status and paid. A client never changes state."""
    order, _ = await _authorised_order(ctx, order_id, client_token)
    return {"id": order.id, "status": order.status,
            "paid": OrderStatus(order.status) in PAID_STATES}


def _pay_view(order: Order, params: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {"order_id": order.id, "provider": order.provider,
                            "channel": order.channel}
    view.update(params)
    return view


async def pay(
    ctx: ServiceContext, order_id: str, client_token: str, login_code: str | None,
    client_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """Turn the login code into an openid, create (or reuse) the provider payment, and
    return exactly what ``wx.requestPayment`` / ``my.tradePay`` need.

    An order this process has just created (``ctx.fresh_orders``) is not read back: its
    payment row is written only if the order is still at the version it was created at,
    and if it is not, the order is read as it is now and judged again."""
    fresh = ctx.fresh_orders.take(order_id)
    if fresh is not None:
        order, payment = _authorised((fresh, None), client_token)
    else:
        order, payment = await _authorised_order(ctx, order_id, client_token)
    now = ctx.clock.now()
    reused = _judge(order, payment, now)
    if reused is not None:
        return reused
    client = ctx.provider(order.provider)
    channel = Channel(order.channel)
    openid = await _openid(ctx, client.needs_openid(channel), login_code)
    written = await _ensure_payment(ctx, order, payment, openid, now,
                                    expect_version=fresh is not None)
    if written is None:  # the order changed since it was created: judge it as it is now
        order, payment = await _authorised_order(ctx, order_id, client_token)
        reused = _judge(order, payment, now)
        if reused is not None:
            return reused
        written = await _ensure_payment(ctx, order, payment, openid, now)
        assert written is not None
    payment = written
    request = PaymentRequest(
        provider_order_no=payment.provider_order_no,
        amount=Money(order.amount_minor, order.currency), channel=channel,
        description=order.description, notify_url=ctx.notify_url(order.provider),
        expires_at=order.expires_at, created_at=payment.created_at, openid=openid,
        client_ip=client_ip,
    )
    try:
        created = await client.create_payment(request)
    except ProviderTimeout:
        await _mark_unknown(ctx, order, payment)
        raise
    params = await _record_prepay(ctx, order, payment, created)
    return _pay_view(order, params)


def _judge(order: Order, payment: Payment | None, now: datetime) -> dict[str, Any] | None:
    """Raise if the order cannot be paid; the pay view if its payment can be reused;
    None if a provider payment is still to be made."""
    _payable(order, now)
    if _reusable(payment, now):
        assert payment is not None and payment.client_params is not None
        return _pay_view(order, payment.client_params)
    return None


def _payable(order: Order, now: datetime) -> None:
    status = OrderStatus(order.status)
    if status in PAID_STATES:
        raise Conflict("order is already paid", code="order_already_paid")
    if status in DEAD_STATES:
        raise Conflict(f"order is {order.status}", code=f"order_{order.status}")
    if now >= order.expires_at:
        raise Conflict("order has expired", code="order_expired")


def _reusable(payment: Payment | None, now: datetime) -> bool:
    return (
        payment is not None and payment.status == "pending" and bool(payment.client_params)
        and payment.params_expire_at is not None and payment.params_expire_at > now
    )


async def _openid(ctx: ServiceContext, needed: bool, login_code: str | None) -> str | None:
    if not needed:
        return None
    if not login_code:
        raise InvalidRequest("login_code is required: the code from wx.login()",
                             param="login_code", code="missing_login_code")
    if ctx.login is None:
        raise InvalidRequest("WeChat login (jscode2session) is not configured",
                             code="login_not_configured")
    return await ctx.login.openid(login_code)


async def _ensure_payment(
    ctx: ServiceContext, order: Order, payment: Payment | None, openid: str | None,
    now: datetime, *, expect_version: bool = False,
) -> Payment | None:
    """The payment row with its provider number, committed before any provider call.

    With ``expect_version`` (``order`` was not read but is as this process created it),
    the row is written only if the order is still at ``order.version`` and has no
    payment yet; None if it is not (nothing written): the caller reads the order."""
    if payment is not None:
        if payment.openid and openid and payment.openid != openid:
            raise Conflict("this order is already being paid by another WeChat user",
                           code="payer_mismatch")
        return payment
    payment = hot.record(
        Payment, id=new_id("pay"), order_id=order.id, provider=order.provider,
        provider_order_no=provider_number(), status="created", openid=openid,
        client_params=None, checks=0, created_at=now, updated_at=now,
        next_check_at=next_check(ctx, 0),
    )
    try:
        if expect_version:
            written = await ctx.hot.steps(_insert_if_unchanged(payment, order.version))
            if written != 1:
                return None
        else:
            await ctx.hot.steps(hot.insert(payment))
    except IntegrityError:
        if expect_version:
            return None  # a payment exists already: the order as it is now decides
        async with ctx.sessions() as session:  # a concurrent pay call created it first
            existing = await repo.payment_for_order(session, order.id)
        if existing is None:
            raise
        return existing
    return payment


def _insert_if_unchanged(payment: Payment, version: int) -> hot.Work[int]:
    written: int = yield hot.INSERT_PAYMENT_IF_UNCHANGED, hot.values(payment) | {
        "order_version": version}
    return written


async def _locked(session: AsyncSession, payment: Payment) -> tuple[Payment, Order]:
    """The payment as it is now, with its order's row lock held to the end of the
    transaction. Every transaction that changes a payment takes it first (notifications
    included), so none of them writes back a status another one has already moved on."""
    found = await repo.payment_with_order(session, payment.provider, payment.provider_order_no,
                                          lock=True)
    assert found is not None, "payments are never deleted"
    return found


async def _mark_unknown(ctx: ServiceContext, order: Order, payment: Payment) -> None:
    now = ctx.clock.now()
    async with ctx.sessions() as session, session.begin():
        fresh, order_row = await _locked(session, payment)
        if fresh.status in ("created", "pending"):
            fresh.status, fresh.updated_at = "unknown", now
            fresh.next_check_at = now + timedelta(seconds=5)
        moved = await repo.move_order(session, order_row, OrderStatus.UNKNOWN, now,
                                      allowed_from={OrderStatus.CREATED, OrderStatus.PENDING})
        if moved:
            repo.add_event(session, EventType.ORDER_UNKNOWN, now, order_id=order.id,
                           data={"reason": "provider call timed out"}, webhooks=False)
    ctx.kick()


async def _record_prepay(
    ctx: ServiceContext, order: Order, payment: Payment, created: CreatedPayment
) -> dict[str, Any]:
    now = ctx.clock.now()
    params: dict[str, Any] = {}
    if created.wechat is not None:
        params["wechat"] = created.wechat
    if created.alipay is not None:
        params["alipay"] = created.alipay
    if not params:
        raise ProviderError("provider returned no client parameters", provider=order.provider)
    moved = None
    if OrderStatus(order.status) in _TO_PENDING:  # the common case: one statement
        moved = await ctx.hot.steps(_prepay_fast(order, payment, created, params, now))
    if moved is None:  # the order is not as it was read: the order's row lock first
        moved = await ctx.hot.transaction(_prepay_work(order, created, params, now))
    if moved:
        ORDER_TRANSITIONS.labels(OrderStatus.PENDING.value).inc()  # committed
    return params


_TO_PENDING = frozenset({OrderStatus.CREATED, OrderStatus.UNKNOWN})
#: Payment statuses a prepay turns into ``pending``.
_PREPAYABLE = frozenset({"created", "unknown", "pending"})
#: The payment's prepay, the order's move to pending and its event: one round trip.
_PREPAY_WRITES = hot.Many(hot.UPDATE_PAYMENT_PREPAY,
                          hot.move_order(OrderStatus.PENDING, _TO_PENDING), hot.INSERT_EVENT)


#: The move to pending (conditional on the version ``pay`` read the order at), then only if
#: it moved: the payment's prepay and the event.
_PREPAY_GUARDED = hot.Many(hot.move_order(OrderStatus.PENDING, _TO_PENDING,
                                          expect_version=True),
                           hot.UPDATE_PAYMENT_PREPAY, hot.INSERT_EVENT, guard=True)


def _prepay_fast(order: Order, payment: Payment, created: CreatedPayment,
                 params: dict[str, Any], now: datetime) -> hot.Work[bool | None]:
    """The prepay as one statement (optimistic): the order moves to ``pending`` only if it
    is still at the version ``pay`` read before calling the provider, and the payment and
    the event are written only if it moved. A payment leaves created/pending/unknown only
    with a move of its order, so at that version its status is still the one read (or
    another of those three) and it is set as ``_prepay_work`` sets it. None if the order
    changed meanwhile (nothing written): ``_prepay_work`` decides under the lock."""
    current = OrderStatus(order.status)
    check_order_transition(current, OrderStatus.PENDING)
    moved, *_ = yield _PREPAY_GUARDED, [
        {"order_id": order.id, "now": now, "version": order.version},
        {"payment_id": payment.id, "now": now, "client_params": params,
         "status": "pending" if payment.status in _PREPAYABLE else payment.status,
         "provider_txn_id": created.provider_txn_id or None,
         "params_expire_at": min(order.expires_at, now + PARAMS_TTL)},
        repo.event_values(EventType.ORDER_PENDING, now, order_id=order.id,
                          data={"provider_order_no": payment.provider_order_no},
                          webhooks=False)]
    if moved != 1:
        raise hot.Rollback(None)
    return True


def _prepay_work(order: Order, created: CreatedPayment, params: dict[str, Any],
                 now: datetime) -> hot.Work[bool]:
    """``_record_prepay``'s transaction on the lean path: the order's row lock first, then
    the payment, the conditional move to ``pending`` and its timeline event."""
    rows = yield hot.ORDER_WITH_PAYMENT_LOCKED, {"order_id": order.id}
    assert rows, "payments are never deleted"
    order_row, fresh = hot.split(rows[0])
    assert fresh is not None
    status = fresh["status"]
    payment = {
        "payment_id": fresh["id"], "now": now, "client_params": params,
        "status": "pending" if status in _PREPAYABLE else status,
        "provider_txn_id": created.provider_txn_id or None,  # else the one it has
        "params_expire_at": min(order.expires_at, now + PARAMS_TTL)}
    current = OrderStatus(order_row["status"])
    if current not in _TO_PENDING:
        yield hot.UPDATE_PAYMENT_PREPAY, payment
        return False
    check_order_transition(current, OrderStatus.PENDING)
    _, moved, _ = yield _PREPAY_WRITES, [
        payment, {"order_id": order.id, "now": now},
        repo.event_values(EventType.ORDER_PENDING, now, order_id=order.id,
                          data={"provider_order_no": fresh["provider_order_no"]},
                          webhooks=False)]
    if moved != 1:
        raise RuntimeError(f"order {order.id} moved under its row lock")
    return True


def payment_ref(order: Order, payment: Payment) -> PaymentRef:
    return PaymentRef(payment.provider_order_no, Money(order.amount_minor, order.currency),
                      payment.created_at, payment.provider_txn_id)


async def settle_payment(
    ctx: ServiceContext, session: AsyncSession, order: Order, payment: Payment,
    state: PaymentState, *, source: str,
) -> str:
    """Apply the provider's word about a payment, inside the caller's transaction.

    Returns what happened: ``paid``, ``paid_after_close``, ``mismatch``, ``failed``,
    ``closed``, ``pending`` or ``noop`` (already applied / nothing to do).
    """
    now = ctx.clock.now()
    if state.status in (P.PAID, P.REFUNDED):
        problem = mismatch(ctx, order, state)
        if problem:
            await _flag(ctx, session, order, payment, problem, source, now)
            return "mismatch"
        return await _apply_paid(ctx, session, order, payment, state, now)
    if state.status in (P.FAILED, P.CLOSED):
        target = OrderStatus.FAILED if state.status is P.FAILED else OrderStatus.CLOSED
        moved = await repo.move_order(session, order, target, now, allowed_from=OPEN_STATES)
        if not moved:
            return "noop"
        payment.status, payment.next_check_at, payment.updated_at = target.value, None, now
        event = EventType.ORDER_FAILED if target is OrderStatus.FAILED else EventType.ORDER_CLOSED
        repo.add_event(session, event, now, order_id=order.id,
                       data={"order": order_view(order, detail=False), "source": source,
                             "detail": state.detail}, webhooks=ctx.webhooks_enabled)
        return target.value
    if state.status is P.PENDING and payment.status == "unknown":
        payment.status, payment.updated_at = "pending", now
        if await repo.move_order(session, order, OrderStatus.PENDING, now,
                                 allowed_from={OrderStatus.CREATED, OrderStatus.UNKNOWN}):
            repo.add_event(session, EventType.ORDER_PENDING, now, order_id=order.id,
                           data={"source": source}, webhooks=False)
        return "pending"
    return "noop"


def mismatch(ctx: ServiceContext, order: Order, state: PaymentState) -> str:
    """Why the provider's word does not fit the order ("" when it does)."""
    expected = Money(order.amount_minor, order.currency)
    if state.amount is None:
        return "amount missing"
    if state.amount.currency != expected.currency:
        return f"currency {state.amount.currency} != {expected.currency}"
    if state.amount.minor != expected.minor:
        return f"amount {state.amount.decimal_str()} != {expected.decimal_str()}"
    identity = getattr(ctx.provider(order.provider), "identity", {})
    for key, got in (("app_id", state.app_id), ("merchant_id", state.merchant_id)):
        want = identity.get(key)
        if want and got is not None and got != want:
            return f"{key} {got!r} != {want!r}"
    return ""


async def _flag(
    ctx: ServiceContext, session: AsyncSession, order: Order, payment: Payment, problem: str,
    source: str, now: datetime,
) -> None:
    log.warning("security: %s payment for %s does not match the order: %s",
                source, order.id, problem)
    order.flagged = 1
    payment.next_check_at = now  # ask the provider directly
    repo.add_event(session, EventType.NOTIFICATION_MISMATCH, now, order_id=order.id,
                   data={"problem": problem, "source": source}, webhooks=False)
    ctx.kick()


async def _apply_paid(
    ctx: ServiceContext, session: AsyncSession, order: Order, payment: Payment,
    state: PaymentState, now: datetime,
) -> str:
    moved = await repo.move_order(session, order, OrderStatus.PAID, now,
                                  allowed_from=OPEN_STATES, paid_at=now)
    event = EventType.ORDER_PAID
    if not moved:
        moved = await repo.move_order(session, order, OrderStatus.PAID_AFTER_CLOSE, now,
                                      allowed_from=DEAD_STATES, paid_at=now)
        event = EventType.ORDER_PAID_AFTER_CLOSE
    if not moved:
        return "noop"
    payment.status, payment.next_check_at, payment.updated_at = "succeeded", None, now
    payment.provider_txn_id = state.provider_txn_id or payment.provider_txn_id
    repo.add_event(session, event, now, order_id=order.id,
                   data={"order": order_view(order, detail=False)},
                   webhooks=ctx.webhooks_enabled)
    if event is EventType.ORDER_PAID_AFTER_CLOSE:
        await _after_close_policy(ctx, session, order, now)
    if ctx.webhooks_enabled or event is EventType.ORDER_PAID_AFTER_CLOSE:
        ctx.kick()  # an event to deliver, or an automatic refund to send
    return "paid" if event is EventType.ORDER_PAID else "paid_after_close"


async def _after_close_policy(
    ctx: ServiceContext, session: AsyncSession, order: Order, now: datetime
) -> None:
    """Money taken for an order the merchant gave up on: refund it (queued for the job
    runner, so the notification's transaction stays short) or flag it for a person."""
    if ctx.settings.paid_after_close == "refund":
        from minigate.service.refunds import reserve_refund

        refund = await reserve_refund(ctx, session, order, order.amount_minor,
                                      "automatic: paid after close", now)
        if refund is not None:
            refund.next_check_at = now
    else:
        order.flagged = 1


async def check_payment(ctx: ServiceContext, payment_id: str, *, source: str = "query") -> str:
    """Ask the provider about one payment and apply the answer."""
    async with ctx.sessions() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}")
        order = await repo.get_order(session, payment.order_id)
        assert order is not None
    client = ctx.provider(payment.provider)
    state = await client.query_payment(payment_ref(order, payment))
    async with ctx.sessions() as session, session.begin():
        payment_row, order_row = await _locked(session, payment)
        outcome = await settle_payment(ctx, session, order_row, payment_row, state, source=source)
        if payment_row.status in ("pending", "unknown", "created"):
            payment_row.checks += 1
            payment_row.next_check_at = next_check(ctx, payment_row.checks)
    return outcome
