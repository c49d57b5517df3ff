"""The sandbox forgets simulated payments past its retention policy.

A shared sandbox must not grow with every order its users ever made. Each simulator notes
what it creates, in order; records older than ``keep`` are forgotten at the next sweep (at
most once a minute, when a record is created), and at most ``max_records`` of each kind are
kept. A forgotten payment is answered like one never made, everywhere it was indexed.
"""

from __future__ import annotations

import gc
from collections.abc import Hashable
from datetime import timedelta
from typing import Any

import pytest

from minigate.clock import FrozenClock
from minigate.sandbox import credentials as cred
from minigate.sandbox.login import LoginSim
from minigate.sandbox.retention import KEEP_ALL, Retention, RetentionPolicy
from minigate.sandbox.server import describe
from tests.support import Harness, harness_settings, start_harness

HOUR = 3600.0
CURRENCY = {"latipay": cred.LATIPAY_CURRENCY, "qfpay": cred.QFPAY_CURRENCY,
            "cbtis": cred.CBTIS_CURRENCY, "wechatpay": "CNY", "wechatpay-v2": "CNY"}


# -- the ledger ---------------------------------------------------------------------------

class Kept:
    """A simulator's index, as far as the ledger sees it."""

    def __init__(self, retention: Retention) -> None:
        self.records: dict[Hashable, str] = {}
        self.forgot: list[Hashable] = []
        self.ledger = retention.ledger("things", self.forget)

    def add(self, key: str) -> None:
        self.records[key] = "record"
        self.ledger.add(key)

    def forget(self, key: Hashable) -> None:
        self.forgot.append(key)
        self.records.pop(key, None)


def test_records_older_than_keep_go_at_the_next_sweep_oldest_first() -> None:
    clock = FrozenClock()
    kept = Kept(Retention(clock, RetentionPolicy(keep=timedelta(hours=24))))
    kept.add("a")
    clock.advance(HOUR)
    kept.add("b")
    clock.advance(23 * HOUR)  # "a" is exactly 24 h old: kept
    kept.add("c")
    assert list(kept.records) == ["a", "b", "c"]
    clock.advance(30)  # "a" is past 24 h, but the last sweep was 30 s ago
    kept.add("d")
    assert "a" in kept.records
    clock.advance(HOUR)  # "a" and "b" are past 24 h
    kept.add("e")
    assert kept.forgot == ["a", "b"]
    assert list(kept.records) == ["c", "d", "e"]
    assert (len(kept.ledger), kept.ledger.forgotten) == (3, 2)


def test_at_most_max_records_are_kept_at_every_creation() -> None:
    clock = FrozenClock()
    kept = Kept(Retention(clock, RetentionPolicy(keep=None, max_records=3)))
    for key in "abcdef":
        kept.add(key)
        assert len(kept.records) <= 3
    assert kept.forgot == ["a", "b", "c"]
    assert list(kept.records) == ["d", "e", "f"]


def test_activity_keeps_a_record_as_long_as_a_new_one() -> None:
    """A record paid, refunded or closed (``touch``) is kept ``keep`` after that, not after
    its creation; its earlier entry is passed over, and it is counted once."""
    clock = FrozenClock()
    kept = Kept(Retention(clock, RetentionPolicy(keep=timedelta(hours=24))))
    kept.add("a")
    kept.add("b")
    clock.advance(23 * HOUR)
    kept.ledger.touch("a")
    kept.ledger.touch("a")  # twice: still one record
    assert len(kept.ledger) == 2
    clock.advance(2 * HOUR)  # "a" made 25 h ago, last touched 2 h ago; "b" made 25 h ago
    kept.add("c")
    assert kept.forgot == ["b"] and list(kept.records) == ["a", "c"]
    assert (len(kept.ledger), kept.ledger.forgotten) == (2, 1)
    clock.advance(23 * HOUR)
    kept.add("d")
    assert kept.forgot == ["b", "a"] and list(kept.records) == ["c", "d"]
    assert (len(kept.ledger), kept.ledger.forgotten) == (2, 2)
    assert not kept.ledger._skip and kept.ledger._stale == 0


def test_the_count_limit_counts_records_not_entries() -> None:
    clock = FrozenClock()
    kept = Kept(Retention(clock, RetentionPolicy(keep=None, max_records=2)))
    kept.add("a")
    kept.add("b")
    for _ in range(3):
        kept.ledger.touch("a")  # "a" is now the most recently active
    kept.add("c")  # three records: the least recently active goes
    assert kept.forgot == ["b"] and list(kept.records) == ["a", "c"]
    assert len(kept.ledger) == 2


def test_a_record_gone_with_another_is_counted_forgotten_at_once() -> None:
    clock = FrozenClock()
    kept = Kept(Retention(clock, RetentionPolicy(keep=timedelta(hours=1))))
    kept.add("r1")
    kept.add("r2")
    kept.records.pop("r1")
    kept.ledger.gone("r1")  # its order was forgotten, and the refund with it
    assert (len(kept.ledger), kept.ledger.forgotten) == (1, 1)
    clock.advance(2 * HOUR)
    kept.add("r3")
    assert kept.forgot == ["r2"]  # r1's entry was passed over: nothing forgotten twice
    assert (len(kept.ledger), kept.ledger.forgotten) == (1, 2)


def test_keep_all_forgets_nothing() -> None:
    clock = FrozenClock()
    kept = Kept(Retention(clock, KEEP_ALL))
    for key in ("a", "b", "c"):
        kept.add(key)
        clock.advance(400 * 24 * HOUR)
    assert kept.forgot == [] and len(kept.records) == 3


def test_ledger_entries_cost_the_collector_nothing() -> None:
    retention = Retention(FrozenClock())
    kept = Kept(retention)
    kept.add("a")
    kept.ledger.add(("merchant", "M-1"))
    gc.collect()
    assert [gc.is_tracked(entry) for entry in kept.ledger._order] == [False, False]


def test_policy_is_validated_and_zero_means_no_limit() -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(keep=timedelta(0))
    with pytest.raises(ValueError):
        RetentionPolicy(max_records=0)
    assert RetentionPolicy.from_hours(0, 0) == KEEP_ALL
    assert RetentionPolicy.from_hours(1.5, 10) == RetentionPolicy(timedelta(minutes=90), 10)
    assert "1.5 hours after its last activity, at most 10 of each kind" in describe(
        "http://sandbox.test", retention=RetentionPolicy.from_hours(1.5, 10))
    assert "until restart, no count limit" in describe("http://sandbox.test",
                                                        retention=KEEP_ALL)


def test_users_not_seen_for_keep_are_forgotten_and_a_login_renews() -> None:
    clock = FrozenClock()
    login = LoginSim(clock, {"wxapp": "secret"})
    ann, ben = login.openid_for("wxapp", "ann"), login.openid_for("wxapp", "ben")
    login.issue_code("ann", "wxapp")
    login.issue_code("ben", "wxapp")
    clock.advance(10 * HOUR)
    login.issue_code("ann", "wxapp")  # ann is seen again
    cutoff = clock.now() - timedelta(hours=5)
    assert login.forget_users(cutoff, None) == 1
    assert login.known_openid("wxapp", ann) and not login.known_openid("wxapp", ben)
    login.issue_code("cat", "wxapp")
    assert login.forget_users(None, 1) == 1  # the least recently seen beyond the limit
    assert not login.known_openid("wxapp", ann)
    assert login.known_openid("wxapp", login.openid_for("wxapp", "cat"))


# -- every simulator, through minigate -------------------------------------------------------

async def _paid_order(h: Harness, provider: str) -> dict[str, Any]:
    order = await h.create_order(provider=provider, currency=CURRENCY[provider], amount="10.00")
    assert await h.shopper_pays(await h.pay(order)) == {"errMsg": "requestPayment:ok"}
    await h.wait_status(order["id"], "paid")
    return order


def _indexed(world: Any) -> dict[str, int]:
    """How many records every index of every simulator holds."""
    return {"latipay": len(world.latipay.orders) + len(world.latipay.by_order_id),
            "qfpay": len(world.qfpay.txns) + len(world.qfpay.by_syssn),
            "cbtis": len(world.cbtis.intents) + len(world.cbtis.by_order_id)
            + len(world.cbtis.refunds),
            "wechatpay": len(world.wechatpay.orders) + len(world.wechatpay.by_transaction_id)
            + len(world.wechatpay.refunds),
            "prepays": len(world.wechat.prepays), "trades": len(world.alipay.trades)}


async def test_every_simulator_forgets_payments_older_than_keep(sqlite_url: str) -> None:
    clock = FrozenClock()
    h = await start_harness(harness_settings(
        sqlite_url, sandbox={"time_scale": 0.001, "keep_hours": 24}),
        clock=clock, run_jobs=True)  # the jobs confirm CBTIS's webhook hint by a query
    try:
        old = {p: await _paid_order(h, p) for p in CURRENCY}
        alipay = await h.create_order(provider="latipay", channel="alipay")
        await h.shopper_pays(await h.pay(alipay))
        for provider in ("cbtis", "wechatpay"):  # refunds are records of their own
            r = await h.api.post(f"/v1/orders/{old[provider]['id']}/refunds",
                                 json={"amount": "1.00"}, headers=h.merchant())
            assert r.status_code == 201, r.text
        await h.world.notifier.drain()
        before = _indexed(h.world)
        assert before == {"latipay": 4, "qfpay": 2, "cbtis": 3, "wechatpay": 5,
                          "prepays": 5, "trades": 1}

        clock.advance(25 * HOUR)
        new = {p: await _paid_order(h, p) for p in CURRENCY}
        await h.world.notifier.drain()
        # Only the new payments are left, in every index of every simulator and core.
        assert _indexed(h.world) == {"latipay": 2, "qfpay": 2, "cbtis": 2, "wechatpay": 4,
                                     "prepays": 5, "trades": 0}
        status = (await h.api.get("/sandbox/control/retention")).json()
        assert status["keep_hours"] == 24 and status["max_records"] == 100_000
        assert status["forgotten"] == {"latipay orders": 2, "qfpay transactions": 1,
                                       "cbtis payment intents": 1, "cbtis refunds": 1,
                                       "wechatpay orders": 2, "wechatpay refunds": 1}
        assert status["kept"]["wechatpay orders"] == 2

        # The new payments still work end to end: refunded, and queried by the reconciler.
        for provider, order in new.items():
            r = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "1.00"},
                                 headers=h.merchant())
            assert r.status_code == 201, (provider, r.text)
            assert r.json()["status"] in ("pending", "succeeded"), (provider, r.text)  # v3: later
    finally:
        await h.api.aclose()
        await h.runtime.stop()


async def test_a_payment_refunded_late_is_kept_for_its_refund(sqlite_url: str) -> None:
    """A payment made 23 hours ago and refunded now is kept ``keep`` after the refund, so
    the refund's query and the order's still answer; a WeChat Pay order's refunds, once
    gone with it, are no longer counted as kept."""
    clock = FrozenClock()
    h = await start_harness(harness_settings(
        sqlite_url, sandbox={"time_scale": 0.001, "keep_hours": 24}),
        clock=clock, run_jobs=True)
    try:
        orders = {p: await _paid_order(h, p) for p in CURRENCY}
        await h.world.notifier.drain()
        clock.advance(23 * HOUR)
        for provider, order in orders.items():
            r = await h.api.post(f"/v1/orders/{order['id']}/refunds",
                                 json={"amount": "1.00"}, headers=h.merchant())
            assert r.status_code == 201, (provider, r.text)
            assert r.json()["status"] in ("pending", "succeeded"), (provider, r.text)
        await h.world.notifier.drain()
        clock.advance(2 * HOUR)  # 25 h after the payments, 2 h after their refunds
        await _paid_order(h, "latipay")  # sweeps
        world = h.world
        assert len(world.latipay.orders) == 2  # the refunded one and the new one
        assert sorted(t.kind for t in world.qfpay.txns.values()) == ["payment", "refund"]
        assert len(world.cbtis.intents) == 1 and len(world.wechatpay.orders) == 2
        kept = (await h.api.get("/sandbox/control/retention")).json()["kept"]
        assert kept["wechatpay refunds"] == 2 and kept["wechatpay orders"] == 2

        clock.advance(25 * HOUR)  # now everything made before is past 24 h
        await _paid_order(h, "latipay")
        status = (await h.api.get("/sandbox/control/retention")).json()
        assert status["kept"]["wechatpay refunds"] == 0
        assert status["kept"]["wechatpay orders"] == 0
        assert status["forgotten"]["wechatpay refunds"] == 2
        assert len(world.latipay.orders) == 1 and not world.wechatpay.refunds
    finally:
        await h.api.aclose()
        await h.runtime.stop()


async def test_a_refund_of_a_forgotten_payment_is_refused_and_changes_nothing(
        sqlite_url: str) -> None:
    clock = FrozenClock()
    h = await start_harness(harness_settings(
        sqlite_url, sandbox={"time_scale": 0.001, "keep_hours": 1}),
        clock=clock, run_jobs=True)
    try:
        order = await _paid_order(h, "wechatpay")
        paid = await h.get_order(order["id"])
        clock.advance(2 * HOUR)
        await _paid_order(h, "wechatpay")  # sweeps
        assert len(h.world.wechatpay.orders) == 1  # the new one only
        r = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "1.00"},
                             headers=h.merchant())
        assert r.status_code == 201, r.text  # recorded, and failed by WeChat's answer
        assert r.json()["status"] == "failed", r.text
        assert r.json()["failure_reason"].startswith("RESOURCE_NOT_EXISTS"), r.text
        after = await h.get_order(order["id"])
        assert after["status"] == "paid" and after["amount_refunded"] == "0.00"
        assert after["amount"] == paid["amount"]
    finally:
        await h.api.aclose()
        await h.runtime.stop()


async def test_max_records_keeps_the_newest_payments(sqlite_url: str) -> None:
    h = await start_harness(harness_settings(
        sqlite_url, sandbox={"time_scale": 0.001, "max_records": 3}), run_jobs=True)
    try:
        made = []  # the simulator's keys, in the order minigate made the payments
        for _ in range(5):
            await h.pay(await h.create_order(provider="latipay"))
            made.append(next(reversed(h.world.latipay.orders)))
            assert len(h.world.latipay.orders) <= 3
        assert list(h.world.latipay.orders) == made[2:]
        assert len(h.world.latipay.by_order_id) == 3 and len(h.world.wechat.prepays) == 3
    finally:
        await h.api.aclose()
        await h.runtime.stop()


async def test_expired_cbtis_tokens_are_dropped_at_a_sweep(sqlite_url: str) -> None:
    clock = FrozenClock()
    h = await start_harness(harness_settings(sqlite_url), clock=clock, run_jobs=True)
    try:
        await _paid_order(h, "cbtis")
        tokens = set(h.world.cbtis.tokens)
        assert tokens
        clock.advance(25 * HOUR)  # every token has expired
        await _paid_order(h, "cbtis")  # minigate logs in again; the sweep drops the old
        assert not tokens & set(h.world.cbtis.tokens) and h.world.cbtis.tokens
    finally:
        await h.api.aclose()
        await h.runtime.stop()
