"""The state tables: every allowed move passes, every other raises."""

from __future__ import annotations

import itertools

import pytest

from minigate.domain.states import (
    ORDER_TRANSITIONS,
    REFUND_TRANSITIONS,
    IllegalTransition,
    OrderStatus,
    RefundStatus,
    check_order_transition,
    check_refund_transition,
    status_after_refunds,
)

ORDER_PAIRS = list(itertools.product(OrderStatus, OrderStatus))
REFUND_PAIRS = list(itertools.product(RefundStatus, RefundStatus))

#: The moves design.md §4 allows, written out here independently of the table under test,
#: so that a move added to (or dropped from) ``ORDER_TRANSITIONS`` by mistake fails a test.
ALLOWED_ORDER_MOVES = {
    ("created", "pending"), ("created", "unknown"), ("created", "paid"),
    ("created", "closed"), ("created", "failed"),
    ("pending", "paid"), ("pending", "closed"), ("pending", "failed"), ("pending", "unknown"),
    ("unknown", "pending"), ("unknown", "paid"), ("unknown", "closed"), ("unknown", "failed"),
    ("paid", "partially_refunded"), ("paid", "refunded"),
    ("partially_refunded", "partially_refunded"), ("partially_refunded", "refunded"),
    ("closed", "paid_after_close"), ("failed", "paid_after_close"),
    ("paid_after_close", "partially_refunded"), ("paid_after_close", "refunded"),
}
ALLOWED_REFUND_MOVES = {
    ("pending", "succeeded"), ("pending", "failed"), ("pending", "unknown"),
    ("unknown", "pending"), ("unknown", "succeeded"), ("unknown", "failed"),
}


@pytest.mark.parametrize(("current", "target"), ORDER_PAIRS)
def test_order_table(current: OrderStatus, target: OrderStatus) -> None:
    if (current.value, target.value) in ALLOWED_ORDER_MOVES:
        check_order_transition(current, target)
    else:
        with pytest.raises(IllegalTransition):
            check_order_transition(current, target)


@pytest.mark.parametrize(("current", "target"), REFUND_PAIRS)
def test_refund_table(current: RefundStatus, target: RefundStatus) -> None:
    if (current.value, target.value) in ALLOWED_REFUND_MOVES:
        check_refund_transition(current, target)
    else:
        with pytest.raises(IllegalTransition):
            check_refund_transition(current, target)


def test_the_tables_hold_exactly_the_documented_moves() -> None:
    order_moves = {(a.value, b.value) for a, targets in ORDER_TRANSITIONS.items()
                   for b in targets}
    refund_moves = {(a.value, b.value) for a, targets in REFUND_TRANSITIONS.items()
                    for b in targets}
    assert order_moves == ALLOWED_ORDER_MOVES
    assert refund_moves == ALLOWED_REFUND_MOVES


def test_the_documented_life_is_allowed() -> None:
    path = ["created", "pending", "paid", "partially_refunded", "partially_refunded", "refunded"]
    for a, b in itertools.pairwise(path):
        check_order_transition(OrderStatus(a), OrderStatus(b))


@pytest.mark.parametrize("paid_state", ["paid", "partially_refunded", "refunded",
                                        "paid_after_close"])
def test_money_taken_never_goes_back_to_unpaid(paid_state: str) -> None:
    for unpaid in ("created", "pending", "unknown", "closed", "failed"):
        with pytest.raises(IllegalTransition):
            check_order_transition(OrderStatus(paid_state), OrderStatus(unpaid))


def test_payment_after_close_has_its_own_state() -> None:
    check_order_transition(OrderStatus.CLOSED, OrderStatus.PAID_AFTER_CLOSE)
    with pytest.raises(IllegalTransition):
        check_order_transition(OrderStatus.CLOSED, OrderStatus.PAID)


def test_terminal_states() -> None:
    assert ORDER_TRANSITIONS[OrderStatus.REFUNDED] == frozenset()
    assert REFUND_TRANSITIONS[RefundStatus.SUCCEEDED] == frozenset()
    assert REFUND_TRANSITIONS[RefundStatus.FAILED] == frozenset()


def test_status_after_refunds() -> None:
    assert status_after_refunds(1000, 400) is OrderStatus.PARTIALLY_REFUNDED
    assert status_after_refunds(1000, 1000) is OrderStatus.REFUNDED
    with pytest.raises(ValueError):
        status_after_refunds(1000, 1001)
