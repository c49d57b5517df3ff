"""What the dashboard pages read. Read-only: every change goes through the service layer.

Amounts leave here as decimal strings with the currency's exponent
(:func:`minigate.domain.money.format_minor`); nothing read here is a secret (client token
hashes, openids, pay parameters and notification bodies are never selected into a page).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from minigate.domain.events import DELIVERABLE, EventType
from minigate.domain.money import format_minor
from minigate.domain.states import OrderStatus
from minigate.service.context import ServiceContext
from minigate.service.orders import _decode_cursor, _encode_cursor
from minigate.store.models import Event, Notification, Order, Payment, Refund, WebhookAttempt

#: Longest search text and page size the Orders page accepts.
MAX_QUERY, PAGE = 64, 25


def money(minor: int, currency: str) -> str:
    return f"{format_minor(minor, currency)} {currency}"


def age(since: datetime, now: datetime) -> str:
    seconds = max(int((now - since).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def delivery_state(event: Event) -> str:
    """delivered / retrying (failed at least once, will try again) / queued / parked."""
    if event.delivery_status == "pending":
        return "retrying" if event.attempts else "queued"
    return event.delivery_status


# -- Overview -----------------------------------------------------------------------------

@dataclass
class Overview:
    day: date
    paid: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    open_payments: list[dict[str, Any]]
    flagged: list[dict[str, Any]]
    undelivered: list[dict[str, Any]]
    undelivered_counts: dict[str, int]
    chart: list[dict[str, Any]]


async def overview(ctx: ServiceContext, *, days: int = 14) -> Overview:
    now = ctx.clock.now()
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    first_day = today - timedelta(days=days - 1)
    async with ctx.sessions() as session:
        paid_rows = (await session.execute(
            select(Order.provider, Order.channel, Order.currency, func.count(),
                   func.sum(Order.amount_minor))
            .where(Order.paid_at >= today).group_by(Order.provider, Order.channel, Order.currency)
            .order_by(Order.provider, Order.channel, Order.currency))).all()
        refund_rows = (await session.execute(
            select(Refund.status, Refund.currency, func.count(), func.sum(Refund.amount_minor))
            .where(or_(Refund.created_at >= today, Refund.status.in_(["pending", "unknown"])))
            .group_by(Refund.status, Refund.currency).order_by(Refund.status))).all()
        open_orders = (await session.execute(
            select(Order).where(Order.status.in_([OrderStatus.PENDING.value,
                                                  OrderStatus.UNKNOWN.value]))
            .order_by(Order.created_at).limit(20))).scalars().all()
        flagged_orders = (await session.execute(
            select(Order).where(Order.flagged == 1).order_by(Order.updated_at.desc())
            .limit(20))).scalars().all()
        mismatches = (await session.execute(
            select(Event).where(Event.type == EventType.NOTIFICATION_MISMATCH.value)
            .order_by(Event.seq.desc()).limit(20))).scalars().all()
        undelivered = (await session.execute(
            select(Event).where(or_(Event.delivery_status == "parked",
                                    (Event.delivery_status == "pending") & (Event.attempts > 0)))
            .order_by(Event.seq.desc()).limit(20))).scalars().all()
        tried = (Event.attempts > 0).label("tried")
        counts = {(status, bool(t)): int(n) for status, t, n in (await session.execute(
            select(Event.delivery_status, tried, func.count())
            .where(Event.delivery_status.in_(["pending", "parked"]))
            .group_by(Event.delivery_status, tried))).all()}
        chart_rows = (await session.execute(
            select(Order.paid_at, Order.amount_minor, Order.currency)
            .where(Order.paid_at >= first_day))).all()
    problems: dict[str, str] = {}
    for event in mismatches:
        if event.order_id and event.order_id not in problems:
            problems[event.order_id] = str(event.data.get("problem", ""))
    return Overview(
        day=today.date(),
        paid=[{"provider": p, "channel": c, "count": n, "total": money(int(s or 0), cur)}
              for p, c, cur, n, s in paid_rows],
        refunds=[{"status": st, "count": n, "total": money(int(s or 0), cur)}
                 for st, cur, n, s in refund_rows],
        open_payments=[{"id": o.id, "reference": o.merchant_reference, "status": o.status,
                        "provider": o.provider, "amount": money(o.amount_minor, o.currency),
                        "age": age(o.created_at, now)} for o in open_orders],
        flagged=[{"id": o.id, "reference": o.merchant_reference, "status": o.status,
                  "problem": problems.get(o.id, "flagged for a person to look at")}
                 for o in flagged_orders],
        undelivered=[{"id": e.id, "type": e.type, "order_id": e.order_id,
                      "state": delivery_state(e), "attempts": e.attempts,
                      "last_error": e.last_error, "age": age(e.created_at, now)}
                     for e in undelivered],
        undelivered_counts={"retrying": counts.get(("pending", True), 0),
                            "parked": sum(n for (st, _), n in counts.items() if st == "parked"),
                            "queued": counts.get(("pending", False), 0)},
        chart=_chart_days(chart_rows, first_day.date(), days),
    )


def _chart_days(rows: Any, first: date, days: int) -> list[dict[str, Any]]:
    per_day: dict[date, dict[str, Any]] = {
        first + timedelta(days=i): {"count": 0, "totals": defaultdict(int)} for i in range(days)}
    for paid_at, minor, currency in rows:
        slot = per_day.get(paid_at.date())
        if slot is not None:
            slot["count"] += 1
            slot["totals"][currency] += minor
    return [{"day": d, "count": v["count"],
             "totals": ", ".join(money(m, c) for c, m in sorted(v["totals"].items())) or "none"}
            for d, v in per_day.items()]


# -- Orders -------------------------------------------------------------------------------

@dataclass
class OrderFilter:
    status: str = ""
    provider: str = ""
    channel: str = ""
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, params: Any) -> OrderFilter:
        f = cls()
        statuses = {s.value for s in OrderStatus}
        f.status = params.get("status", "") if params.get("status", "") in statuses else ""
        f.provider = params.get("provider", "")[:32]
        f.channel = params.get("channel", "") if params.get("channel") in ("wechat",
                                                                         "alipay") else ""
        f.q = params.get("q", "").strip()[:MAX_QUERY]
        for name in ("from", "to"):
            raw = params.get(name, "")
            if raw:
                try:
                    setattr(f, f"date_{name}", date.fromisoformat(raw[:10]))
                except ValueError:
                    f.problems.append(f"'{name}' is not a date (YYYY-MM-DD)")
        return f

    def query(self) -> dict[str, str]:
        out = {"status": self.status, "provider": self.provider, "channel": self.channel,
               "q": self.q, "from": self.date_from.isoformat() if self.date_from else "",
               "to": self.date_to.isoformat() if self.date_to else ""}
        return {k: v for k, v in out.items() if v}


@dataclass
class OrderPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


async def search_orders(ctx: ServiceContext, f: OrderFilter, cursor: str | None) -> OrderPage:
    """Newest first, keyset-paginated on (created_at, id) like ``GET /v1/orders``."""
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(PAGE + 1)
    if f.status:
        stmt = stmt.where(Order.status == f.status)
    if f.provider:
        stmt = stmt.where(Order.provider == f.provider)
    if f.channel:
        stmt = stmt.where(Order.channel == f.channel)
    if f.date_from:
        stmt = stmt.where(Order.created_at >= datetime(*f.date_from.timetuple()[:3], tzinfo=UTC))
    if f.date_to:
        end = datetime(*f.date_to.timetuple()[:3], tzinfo=UTC) + timedelta(days=1)
        stmt = stmt.where(Order.created_at < end)
    if f.q:
        by_payment = select(Payment.order_id).where(
            or_(Payment.provider_order_no == f.q, Payment.provider_txn_id == f.q))
        by_refund = select(Refund.order_id).where(
            or_(Refund.provider_refund_no == f.q, Refund.provider_refund_id == f.q))
        stmt = stmt.where(or_(Order.id == f.q, Order.merchant_reference == f.q,
                              Order.id.in_(by_payment), Order.id.in_(by_refund)))
    if cursor:
        created, oid = _decode_cursor(cursor)
        stmt = stmt.where((Order.created_at < created)
                          | ((Order.created_at == created) & (Order.id < oid)))
    async with ctx.sessions() as session:
        rows = list((await session.execute(stmt)).scalars().all())
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return OrderPage(
        rows=[{"id": o.id, "reference": o.merchant_reference, "status": o.status,
               "provider": o.provider, "channel": o.channel,
               "amount": money(o.amount_minor, o.currency),
               "refunded": money(o.refunded_minor, o.currency) if o.refunded_minor else "",
               "flagged": bool(o.flagged), "created_at": o.created_at} for o in rows],
        next_cursor=_encode_cursor(rows[-1]) if more and rows else None)


async def providers_in_use(ctx: ServiceContext) -> list[str]:
    return sorted(ctx.providers)


# -- One order ----------------------------------------------------------------------------

_EVENT_TITLES = {
    EventType.ORDER_CREATED: "Order created",
    EventType.ORDER_PENDING: "Payment started at the provider",
    EventType.ORDER_UNKNOWN: "Provider did not answer: outcome unknown, to be queried",
    EventType.ORDER_PAID: "Paid",
    EventType.ORDER_CLOSED: "Closed",
    EventType.ORDER_FAILED: "Payment failed",
    EventType.ORDER_PAID_AFTER_CLOSE: "Paid after it was closed",
    EventType.REFUND_CREATED: "Refund requested",
    EventType.REFUND_SUCCEEDED: "Refund succeeded",
    EventType.REFUND_FAILED: "Refund failed",
    EventType.NOTIFICATION_MISMATCH: "Provider's word does not match the order (flagged)",
    EventType.NOTIFICATION_UNVERIFIED: "Unverifiable callback: provider query brought forward",
}


@dataclass
class OrderDetail:
    refundable: str
    refundable_minor: int
    timeline: list[dict[str, Any]]
    deliverable: list[dict[str, Any]]
    checks: int
    next_check_at: datetime | None


def _event_detail(event: Event) -> str:
    data = event.data or {}
    parts = []
    refund = data.get("refund")
    if isinstance(refund, dict):
        parts.append(f"{refund.get('amount')} {refund.get('currency')} ({refund.get('id')})")
    for key in ("reason", "problem", "detail"):
        if data.get(key):
            parts.append(f"{key}: {data[key]}")
    source = data.get("source")
    if source:
        parts.append({"query": "learnt by asking the provider",
                      "reconciler": "learnt by the reconciler's provider query",
                      "notification": "learnt from the provider's notification"}.get(
                          str(source), f"source: {source}"))
    if "amount" in data and not refund:
        parts.append(f"amount {data['amount']}")
    return "; ".join(parts)


async def order_detail(ctx: ServiceContext, order_id: str) -> OrderDetail | None:
    async with ctx.sessions() as session:
        order = await session.get(Order, order_id)
        if order is None:
            return None
        payment = (await session.execute(
            select(Payment).where(Payment.order_id == order_id))).scalar_one_or_none()
        events = (await session.execute(
            select(Event).where(Event.order_id == order_id).order_by(Event.seq))).scalars().all()
        notes = (await session.execute(
            select(Notification.provider, Notification.outcome, Notification.received_at)
            .where(Notification.order_id == order_id).order_by(Notification.id))).all()
        attempts = (await session.execute(
            select(WebhookAttempt, Event.type, Event.id).join(Event,
                                                                Event.seq == WebhookAttempt.event_seq)
            .where(Event.order_id == order_id).order_by(WebhookAttempt.id))).all()
    timeline: list[dict[str, Any]] = []
    for e in events:
        timeline.append({"at": e.created_at, "kind": "event", "title": _EVENT_TITLES.get(
            EventType(e.type), e.type) if e.type in EventType.__members__.values() else e.type,
            "type": e.type, "detail": _event_detail(e)})
    for provider, outcome, received_at in notes:
        timeline.append({"at": received_at, "kind": "notification",
                         "title": f"Notification from {provider}", "type": "notification",
                         "detail": f"outcome: {outcome}"})
    for attempt, etype, eid in attempts:
        answer = (f"HTTP {attempt.status_code}" if attempt.status_code is not None
                  else attempt.error or "no answer")
        ok = attempt.status_code is not None and 200 <= attempt.status_code < 300
        timeline.append({"at": attempt.attempted_at, "kind": "webhook" if ok else "webhook-failed",
                         "title": f"Webhook {etype} {'delivered' if ok else 'not delivered'}",
                         "type": "webhook", "detail": f"{eid}: {answer}"})
    timeline.sort(key=lambda item: item["at"])
    deliverable = [{"id": e.id, "type": e.type, "state": delivery_state(e),
                    "attempts": e.attempts, "last_error": e.last_error}
                   for e in events if e.type in {t.value for t in DELIVERABLE} and e.deliver]
    left = order.amount_minor - order.refund_reserved_minor
    return OrderDetail(refundable=format_minor(left, order.currency), refundable_minor=left,
                       timeline=timeline, deliverable=deliverable,
                       checks=payment.checks if payment else 0,
                       next_check_at=payment.next_check_at if payment else None)


# -- Events -------------------------------------------------------------------------------

EVENT_FILTERS = {
    "delivered": Event.delivery_status == "delivered",
    "retrying": Event.delivery_status == "pending",
    "parked": Event.delivery_status == "parked",
}


async def deliveries(ctx: ServiceContext, state: str, before: int | None
                     ) -> tuple[list[dict[str, Any]], int | None]:
    """Webhook events newest first, ``PAGE`` at a time (``before`` = a sequence number)."""
    now = ctx.clock.now()
    stmt = select(Event).where(Event.deliver == 1).order_by(Event.seq.desc()).limit(PAGE + 1)
    if state in EVENT_FILTERS:
        stmt = stmt.where(EVENT_FILTERS[state])
    if before is not None:
        stmt = stmt.where(Event.seq < before)
    async with ctx.sessions() as session:
        rows = list((await session.execute(stmt)).scalars().all())
        codes: dict[int, int | None] = {}
        if rows:
            last = (select(WebhookAttempt.event_seq, func.max(WebhookAttempt.id))
                    .where(WebhookAttempt.event_seq.in_([e.seq for e in rows[:PAGE]]))
                    .group_by(WebhookAttempt.event_seq).subquery())
            found = await session.execute(
                select(WebhookAttempt.event_seq, WebhookAttempt.status_code)
                .join(last, WebhookAttempt.id == last.c[1]))
            codes = {seq: code for seq, code in found.all()}
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return ([{"id": e.id, "seq": e.seq, "type": e.type, "order_id": e.order_id,
              "state": delivery_state(e), "attempts": e.attempts,
              "last_code": codes.get(e.seq), "last_error": e.last_error,
              "next_attempt_at": e.next_attempt_at, "age": age(e.created_at, now)}
             for e in rows],
            rows[-1].seq if more and rows else None)
