"""Domain rows → the API's JSON shapes (amounts as decimal strings, times as ISO 8601)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from minigate.domain.money import format_minor
from minigate.domain.states import PAID_STATES, OrderStatus
from minigate.store.models import Event, Order, Payment, Refund


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON with orjson; the standard library for what orjson refuses (an
    integer beyond 64 bits in a merchant's metadata), with the same output otherwise."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def order_view(
    order: Order,
    payment: Payment | None = None,
    refunds: Sequence[Refund] = (),
    events: Sequence[Event] = (),
    *,
    detail: bool = True,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": order.id,
        "object": "order",
        "status": order.status,
        "paid": OrderStatus(order.status) in PAID_STATES,
        "merchant_reference": order.merchant_reference,
        "amount": format_minor(order.amount_minor, order.currency),
        "amount_refunded": format_minor(order.refunded_minor, order.currency),
        "currency": order.currency,
        "description": order.description,
        "provider": order.provider,
        "channel": order.channel,
        "metadata": order.metadata_json,
        "flagged": bool(order.flagged),
        "expires_at": iso(order.expires_at),
        "paid_at": iso(order.paid_at),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
    }
    if detail:
        view["payments"] = [payment_view(payment)] if payment else []
        view["refunds"] = [refund_view(r) for r in refunds]
        view["timeline"] = [event_view(e, timeline=True) for e in events]
    return view


def payment_view(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "status": payment.status,
        "provider": payment.provider,
        "provider_order_no": payment.provider_order_no,
        "provider_txn_id": payment.provider_txn_id,
        "created_at": iso(payment.created_at),
    }


def refund_view(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "object": "refund",
        "order_id": refund.order_id,
        "status": refund.status,
        "amount": format_minor(refund.amount_minor, refund.currency),
        "currency": refund.currency,
        "reason": refund.reason,
        "failure_reason": refund.failure_reason or None,
        "provider_refund_no": refund.provider_refund_no,
        "created_at": iso(refund.created_at),
        "updated_at": iso(refund.updated_at),
    }


def event_view(event: Event, *, timeline: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "created_at": iso(event.created_at),
        "data": event.data,
    }
    if not timeline:
        view.update(object="event", order_id=event.order_id, sequence=event.seq,
                    delivery={"status": event.delivery_status, "attempts": event.attempts,
                              "last_error": event.last_error or None})
    return view
