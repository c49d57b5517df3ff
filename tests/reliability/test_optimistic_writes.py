"""Optimistic writes on the hot path. A paid notification (``notifications._settle_paid``)
reads the order without a lock, decides, and writes the transition with everything that
goes with it as one statement conditional on the version it read; ``pay``'s prepay
(``payments._prepay_fast``) does the same with the version it read before calling the
provider. These tests make another writer change the order between the read and the write —
on PostgreSQL the steps are separate autocommitted statements, so this is exactly the
window another process has — and check that nothing is written twice or lost: the guarded
write does nothing, and the locked path decides again from what is really there."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, select, update

from minigate.domain.states import OrderStatus
from minigate.service import notifications, payments
from minigate.store import hot
from minigate.store.models import Event, Notification, Order, Payment
from tests.support import Harness


def _racing(change: hot.Sql, values: dict[str, Any], seen: list[str]) -> Any:
    """``_settle_paid`` with ``change`` committed by "someone else" right after its read."""
    original = notifications._settle_paid

    def settle(*args: Any) -> hot.Work[str | None]:
        work = original(*args)
        rows = yield next(work)
        if rows:
            seen.append(rows[0]["id"])
            yield change, {"order_id": rows[0]["id"], **values}
        step = work.send(rows)
        while True:
            try:
                step = work.send((yield step))
            except StopIteration as done:
                return done.value

    return settle


async def _paid_through_sandbox(gateway: Harness) -> dict[str, Any]:
    order = await gateway.create_order(provider="latipay")
    await gateway.shopper_pays(await gateway.pay(order))
    return order


async def _facts(gateway: Harness, order_id: str) -> tuple[str, int, list[str], list[str], str]:
    async with gateway.ctx.sessions() as session:
        row = (await session.execute(select(Order.status, Order.version)
                                     .where(Order.id == order_id))).one()
        events = (await session.scalars(select(Event.type).where(Event.order_id == order_id)
                                        .order_by(Event.seq))).all()
        outcomes = (await session.scalars(select(Notification.outcome)
                                          .where(Notification.order_id == order_id))).all()
        payment = (await session.scalars(select(Payment.status)
                                         .where(Payment.order_id == order_id))).one()
    return row.status, row.version, list(events), list(outcomes), payment


async def test_an_order_changed_between_read_and_write_is_decided_again(
    gateway: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer bumps the version (say, a metadata change): the guarded write touches
    nothing, the general path pays the order, once."""
    seen: list[str] = []
    touch = hot.Sql(update(Order).where(Order.id == bindparam("order_id"))
                    .values(version=Order.version + 1, description=bindparam("description")))
    monkeypatch.setattr(notifications, "_settle_paid",
                        _racing(touch, {"description": "changed"}, seen))
    general: list[str] = []
    apply = notifications._apply

    async def counted(ctx: Any, session: Any, provider: str, verified: Any) -> Any:
        general.append(provider)
        return await apply(ctx, session, provider, verified)

    monkeypatch.setattr(notifications, "_apply", counted)
    order = await _paid_through_sandbox(gateway)
    await gateway.wait_status(order["id"], "paid")
    assert seen == [order["id"]] and general == ["latipay"]  # the race was hit
    status, version, events, outcomes, payment = await _facts(gateway, order["id"])
    assert status == "paid" and payment == "succeeded"
    assert events.count("order.paid") == 1 and outcomes == ["paid"]
    # created 1 → pending 2 → (someone else 3) → paid: one move. On SQLite the two steps
    # are one transaction, so the interloper's write was inside it and rolled back with it.
    async with gateway.ctx.sessions() as session:
        description = await session.scalar(select(Order.description)
                                           .where(Order.id == order["id"]))
    assert version == (4 if description == "changed" else 3)
    assert (description == "changed") == gateway.ctx.settings.database_url.startswith("postgres")


async def test_an_order_closed_between_read_and_write_is_not_paid_as_open(
    gateway: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order is closed in the window: the guarded write must not pay it as if it were
    open; the general path sees the close and records money after close."""
    seen: list[str] = []
    close = hot.Sql(update(Order).where(Order.id == bindparam("order_id"))
                    .values(status=OrderStatus.CLOSED.value, version=Order.version + 1))
    monkeypatch.setattr(notifications, "_settle_paid", _racing(close, {}, seen))
    order = await _paid_through_sandbox(gateway)
    if not gateway.ctx.settings.database_url.startswith("postgres"):
        # SQLite runs both steps in one transaction: the close was inside it and rolled
        # back with it, so the general path finds the order open and pays it, once.
        await gateway.wait_status(order["id"], "paid")
        _, _, events, outcomes, _ = await _facts(gateway, order["id"])
        assert seen == [order["id"]] and events.count("order.paid") == 1
        assert outcomes == ["paid"]
        return
    await gateway.wait_status(order["id"], "paid_after_close")
    status, _, events, outcomes, payment = await _facts(gateway, order["id"])
    assert seen == [order["id"]]
    assert status == "paid_after_close" and "order.paid" not in events
    assert len(outcomes) == 1 and payment == "succeeded"


async def test_the_guarded_write_is_all_or_nothing(gateway: Harness) -> None:
    """The statement itself, with a stale version: nothing at all; with the version read:
    all four writes. The provider's transaction id is kept when the notification has
    none."""
    order = await gateway.create_order(provider="latipay")
    await gateway.pay(order)
    store = gateway.ctx.hot
    rows = await store.read(hot.LOCATE_PAYMENT, provider="latipay",
                            number=(await _number(gateway, order["id"])))
    got, payment = hot.split(rows[0])
    assert payment is not None
    async with gateway.ctx.sessions() as session, session.begin():
        await session.execute(update(Payment).where(Payment.id == payment["id"])
                              .values(provider_txn_id="TXN-KEPT"))
    now = gateway.ctx.clock.now()
    event = {"id": "evt_guarded", "type": "order.paid", "order_id": got["id"], "data": {},
             "deliver": 0, "delivery_status": "skipped", "next_attempt_at": None,
             "created_at": now}
    record = {"provider": "latipay", "event_key": "guarded-1", "order_id": got["id"],
              "outcome": "paid", "body": b"{}", "received_at": now}

    def write(version: int) -> hot.Work[list[int]]:
        counts = yield notifications._PAID_WRITES, [
            {"order_id": got["id"], "now": now, "paid_at": now, "version": version},
            {"payment_id": payment["id"], "now": now, "provider_txn_id": None},
            event, record]
        return list(counts)

    before = await gateway.row_counts()
    assert await store.steps(write(got["version"] - 1)) == [0, 0, 0, 0]
    assert await gateway.row_counts() == before
    status, version, *_ = await _facts(gateway, order["id"])
    assert (status, version) == ("pending", got["version"])
    assert await store.steps(write(got["version"])) == [1, 1, 1, 1]
    status, version, events, outcomes, paid = await _facts(gateway, order["id"])
    assert (status, version, paid, outcomes) == ("paid", got["version"] + 1, "succeeded",
                                                 ["paid"])
    assert events[-1] == "order.paid"
    async with gateway.ctx.sessions() as session:
        txn = await session.scalar(select(Payment.provider_txn_id)
                                   .where(Payment.id == payment["id"]))
    assert txn == "TXN-KEPT"


async def _number(gateway: Harness, order_id: str) -> str:
    async with gateway.ctx.sessions() as session:
        number = await session.scalar(select(Payment.provider_order_no)
                                      .where(Payment.order_id == order_id))
    assert number is not None
    return number


async def test_a_prepay_whose_order_changed_meanwhile_takes_the_locked_path(
    gateway: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else changes the order while the provider creates the payment: the one
    statement writes nothing, and the locked transaction moves the order to pending,
    once, with the payment's client parameters."""
    original = payments._prepay_fast
    touched: list[str] = []
    touch = hot.Sql(update(Order).where(Order.id == bindparam("order_id"))
                    .values(version=Order.version + 1))

    def racing(order: Any, *args: Any) -> hot.Work[bool | None]:
        touched.append(order.id)
        yield touch, {"order_id": order.id}
        return (yield from original(order, *args))

    monkeypatch.setattr(payments, "_prepay_fast", racing)
    order = await gateway.create_order(provider="latipay")
    pay = await gateway.pay(order)
    assert touched == [order["id"]] and pay["wechat"]["paySign"]
    status, version, events, _, payment = await _facts(gateway, order["id"])
    assert (status, payment) == ("pending", "pending")
    assert events.count("order.pending") == 1
    async with gateway.ctx.sessions() as session:
        params = await session.scalar(select(Payment.client_params)
                                      .where(Payment.order_id == order["id"]))
    assert params == {"wechat": pay["wechat"]}
    # created 1 → (someone else 2, kept on PostgreSQL) → pending: one move
    on_postgres = gateway.ctx.settings.database_url.startswith("postgres")
    assert version == (3 if on_postgres else 2)


# --- pay on an order this process has just created (``ctx.fresh_orders``) ---------------


async def _pay(gateway: Harness, order: dict[str, Any], token: str | None = None
               ) -> tuple[int, dict[str, Any]]:
    r = await gateway.api.post(
        f"/v1/client/orders/{order['id']}/pay",
        json={"client_token": token or order["client_token"],
              "login_code": await gateway.login_code()})
    return r.status_code, r.json()


async def test_pay_on_an_order_just_created_writes_without_reading_it(
        gateway: Harness) -> None:
    order = await gateway.create_order(provider="latipay")
    before = gateway.ctx.hot.statements
    status, pay = await _pay(gateway, order)
    assert status == 200 and pay["wechat"]["paySign"]
    assert gateway.ctx.hot.statements - before == 2  # the payment row, the prepay: no read
    assert gateway.ctx.fresh_orders.take(order["id"]) is None  # a hint is used once
    state, version, events, _, payment = await _facts(gateway, order["id"])
    assert (state, version, payment) == ("pending", 2, "pending")
    assert events.count("order.pending") == 1
    again = await _pay(gateway, order)  # read from the database now: the same answer
    assert again == (200, pay)


async def test_a_hint_gone_stale_writes_nothing_and_the_order_as_it_is_decides(
        gateway: Harness) -> None:
    """The merchant closed the order after creating it; the hint still says "created"."""
    order = await gateway.create_order(provider="latipay")
    r = await gateway.api.post(f"/v1/orders/{order['id']}/close", headers=gateway.merchant())
    assert r.status_code == 200 and r.json()["status"] == "closed"
    before = await gateway.row_counts()
    status, body = await _pay(gateway, order)
    assert (status, body["error"]["code"]) == (409, "order_closed")
    assert await gateway.row_counts() == before  # no payment row, no event


async def test_a_hint_for_an_order_paid_meanwhile_gives_the_payment_it_has(
        gateway: Harness) -> None:
    """Another replica took the first pay call; this one still holds the hint."""
    order = await gateway.create_order(provider="latipay")
    hint = gateway.ctx.fresh_orders.take(order["id"])
    assert hint is not None and hint.version == 1
    first = await _pay(gateway, order)
    gateway.ctx.fresh_orders.add(hint)
    before = await gateway.row_counts()
    assert await _pay(gateway, order) == first  # the reusable payment, read back
    assert await gateway.row_counts() == before


async def test_a_payment_written_under_an_unchanged_order_is_used_not_doubled(
        gateway: Harness) -> None:
    """Another replica has written the payment row but not yet its prepay (the order is
    still at version 1): the conditional insert fails on the unique order, and this call
    goes on with that payment, under its provider number."""
    order = await gateway.create_order(provider="latipay")
    hint = gateway.ctx.fresh_orders.take(order["id"])
    now = gateway.ctx.clock.now()
    theirs = hot.record(Payment, id="pay_theirs", order_id=order["id"], provider="latipay",
                        provider_order_no="MGTHEIRS0001", status="created", checks=0,
                        created_at=now, updated_at=now, next_check_at=now)
    await gateway.ctx.hot.steps(hot.insert(theirs))
    gateway.ctx.fresh_orders.add(hint)
    status, pay = await _pay(gateway, order)
    assert status == 200 and pay["wechat"]["paySign"]
    assert (await gateway.row_counts())["payments"] == 1
    assert await _number(gateway, order["id"]) == "MGTHEIRS0001"
    state, version, _, _, payment = await _facts(gateway, order["id"])
    assert (state, version, payment) == ("pending", 2, "pending")


async def test_a_wrong_token_is_refused_with_a_hint_too(gateway: Harness) -> None:
    order = await gateway.create_order(provider="latipay")
    status, body = await _pay(gateway, order, token="ct_not-this-one")
    assert (status, body["error"]["code"]) == (401, "invalid_client_token")
    assert (await gateway.row_counts())["payments"] == 0


def test_fresh_orders_are_bounded_and_used_once() -> None:
    from types import SimpleNamespace

    from minigate.service.context import FreshOrders

    fresh = FreshOrders(limit=2)
    for name in ("a", "b", "c"):
        fresh.add(SimpleNamespace(id=name))
    assert len(fresh) == 2 and fresh.take("a") is None  # the oldest went first
    assert fresh.take("b").id == "b" and fresh.take("b") is None
    assert fresh.take("c").id == "c" and len(fresh) == 0
