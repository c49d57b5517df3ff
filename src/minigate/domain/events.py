"""Event types: what minigate tells the merchant (outbox) and records on an order's timeline."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    # Sent to the merchant's webhook endpoint.
    ORDER_PAID = "order.paid"
    ORDER_CLOSED = "order.closed"
    ORDER_FAILED = "order.failed"
    ORDER_PAID_AFTER_CLOSE = "order.paid_after_close"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    # Timeline only: kept for operators, never delivered.
    ORDER_CREATED = "order.created"
    ORDER_PENDING = "order.pending"
    ORDER_UNKNOWN = "order.unknown"
    REFUND_CREATED = "refund.created"
    NOTIFICATION_MISMATCH = "security.notification_mismatch"
    NOTIFICATION_UNVERIFIED = "security.notification_unverified"


#: The event types that the merchant's webhook endpoint receives.
DELIVERABLE = frozenset({
    EventType.ORDER_PAID, EventType.ORDER_CLOSED, EventType.ORDER_FAILED,
    EventType.ORDER_PAID_AFTER_CLOSE, EventType.REFUND_SUCCEEDED, EventType.REFUND_FAILED,
})
