"""The order and refund state machines: every legal move is one row in one table.

Why a table: payment state is touched from many places (the pay call, notifications,
queries, the reconciler, expiry, refunds), and every one of them must agree. Whoever wants
to move an order asks :func:`check_order_transition`; a move that is not in the table raises
:class:`IllegalTransition` and nothing is written.

Order life::

    created ──► pending ──► paid ──► partially_refunded ──► refunded
       │  ╲        │  ╲                     ▲
       │   ╲       │   └──► closed | failed ──► paid_after_close ──► (partially_)refunded
       │    └──► unknown (provider call's outcome not known; a query settles it)
       └──► closed | failed

Terminal states never regress: ``paid`` can only move forward into refunds, and a
``closed`` order that the provider later reports paid becomes ``paid_after_close`` (money
was taken for an order the merchant gave up on; it is refunded or escalated by policy).
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    UNKNOWN = "unknown"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CLOSED = "closed"
    FAILED = "failed"
    PAID_AFTER_CLOSE = "paid_after_close"


class RefundStatus(StrEnum):
    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class IllegalTransition(Exception):
    """A state change that the table does not allow (a bug or a race lost)."""

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"illegal {kind} transition {current} -> {target}")
        self.current = current
        self.target = target


_O = OrderStatus
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _O.CREATED: frozenset({_O.PENDING, _O.UNKNOWN, _O.PAID, _O.CLOSED, _O.FAILED}),
    _O.PENDING: frozenset({_O.PAID, _O.CLOSED, _O.FAILED, _O.UNKNOWN}),
    _O.UNKNOWN: frozenset({_O.PENDING, _O.PAID, _O.CLOSED, _O.FAILED}),
    _O.PAID: frozenset({_O.PARTIALLY_REFUNDED, _O.REFUNDED}),
    _O.PARTIALLY_REFUNDED: frozenset({_O.PARTIALLY_REFUNDED, _O.REFUNDED}),
    _O.REFUNDED: frozenset(),
    _O.CLOSED: frozenset({_O.PAID_AFTER_CLOSE}),
    _O.FAILED: frozenset({_O.PAID_AFTER_CLOSE}),
    _O.PAID_AFTER_CLOSE: frozenset({_O.PARTIALLY_REFUNDED, _O.REFUNDED}),
}

_R = RefundStatus
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    _R.PENDING: frozenset({_R.SUCCEEDED, _R.FAILED, _R.UNKNOWN}),
    _R.UNKNOWN: frozenset({_R.PENDING, _R.SUCCEEDED, _R.FAILED}),
    _R.SUCCEEDED: frozenset(),
    _R.FAILED: frozenset(),
}

#: Orders whose money has been taken (refunds may be made against them).
PAID_STATES = frozenset({_O.PAID, _O.PARTIALLY_REFUNDED, _O.REFUNDED, _O.PAID_AFTER_CLOSE})
#: Orders still waiting for the shopper or for the provider's word.
OPEN_STATES = frozenset({_O.CREATED, _O.PENDING, _O.UNKNOWN})
#: Orders that can no longer be paid normally.
DEAD_STATES = frozenset({_O.CLOSED, _O.FAILED})


def check_order_transition(current: OrderStatus, target: OrderStatus) -> None:
    """Raise :class:`IllegalTransition` unless the table allows ``current -> target``."""
    if target not in ORDER_TRANSITIONS[current]:
        raise IllegalTransition("order", current, target)


def check_refund_transition(current: RefundStatus, target: RefundStatus) -> None:
    """Raise :class:`IllegalTransition` unless the table allows ``current -> target``."""
    if target not in REFUND_TRANSITIONS[current]:
        raise IllegalTransition("refund", current, target)


def status_after_refunds(paid_minor: int, refunded_minor: int) -> OrderStatus:
    """The order status once ``refunded_minor`` of ``paid_minor`` has been refunded."""
    if refunded_minor <= 0 or refunded_minor > paid_minor:
        raise ValueError("refunded amount must be within (0, paid]")
    return _O.REFUNDED if refunded_minor == paid_minor else _O.PARTIALLY_REFUNDED
