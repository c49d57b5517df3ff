"""A hypothesis state machine over the whole flow, checked against the simulator's ledger.

Rules: create / pay / shopper pays / duplicate notification / poll / refund / close /
expire. Invariants after every step: only legal transitions; paid at most once; refunds
never above what was paid; every status change has exactly one event; and minigate's
view of each order equals the simulator's ledger.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from minigate.domain.states import ORDER_TRANSITIONS, PAID_STATES, OrderStatus
from tests.reliability.conftest import Rig, make_rig

# Which event records each status change on the timeline.
STATUS_EVENT = {
    "pending": "order.pending", "unknown": "order.unknown", "paid": "order.paid",
    "closed": "order.closed", "failed": "order.failed",
    "paid_after_close": "order.paid_after_close",
    "partially_refunded": "refund.succeeded", "refunded": "refund.succeeded",
}


class PaymentFlow(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{Path(self.tmp.name) / 'sm.db'}"
        self.rig: Rig = self.loop.run_until_complete(make_rig(url))
        self.orders: list[dict[str, Any]] = []
        self.pays: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[str]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.rig.gw.api.aclose())
        self.run(self.rig.gw.runtime.stop())
        self.loop.close()
        self.tmp.cleanup()

    def _observe(self) -> None:
        for order in self.orders:
            status = self.run(self.rig.gw.get_order(order["id"]))["status"]
            seen = self.history.setdefault(order["id"], ["created"])
            if seen[-1] != status:
                seen.append(status)

    @rule(amount=st.sampled_from(["1.00", "12.30", "99.99"]))
    def create(self, amount: str) -> None:
        self.orders.append(self.run(self.rig.gw.create_order(amount=amount)))
        self._observe()

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 50))
    def pay(self, i: int) -> None:
        order = self.orders[i % len(self.orders)]
        code = self.run(self.rig.gw.login_code())
        r = self.run(self.rig.gw.api.post(f"/v1/client/orders/{order['id']}/pay",
                                          json={"client_token": order["client_token"],
                                                "login_code": code}))
        if r.status_code == 200:
            self.pays[order["id"]] = r.json()
        else:
            assert r.status_code in (409,), r.text
        self._observe()

    @precondition(lambda self: self.pays)
    @rule(i=st.integers(0, 50), outcome=st.sampled_from(["success", "success", "cancel"]),
          blackhole=st.booleans())
    def shopper_pays(self, i: int, outcome: str, blackhole: bool) -> None:
        order_id = sorted(self.pays)[i % len(self.pays)]
        self.rig.gw.world.notifier.options.blackhole = blackhole
        self.run(self.rig.gw.shopper_pays(self.pays[order_id], outcome))
        self.run(self.rig.gw.world.notifier.drain(5))
        self._observe()

    @precondition(lambda self: self.pays)
    @rule(i=st.integers(0, 50))
    def duplicate_notification(self, i: int) -> None:
        order_id = sorted(self.pays)[i % len(self.pays)]
        sims = [o for o in self.rig.gw.world.latipay.orders.values()
                if o.status == "paid" and self._sim_belongs(o, order_id)]
        for sim in sims:
            self.rig.gw.world.notifier.options.blackhole = False
            self.run(self._resend(sim))
        self._observe()

    @rule(seconds=st.sampled_from([1, 30, 120, 3600]))
    def poll(self, seconds: int) -> None:
        self.run(self.rig.run_jobs(seconds=seconds))
        self._observe()

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 50), amount=st.sampled_from(["0.50", "1.00", "5.00", None]))
    def refund(self, i: int, amount: str | None) -> None:
        order = self.orders[i % len(self.orders)]
        body = {"amount": amount} if amount else {}
        r = self.run(self.rig.gw.api.post(f"/v1/orders/{order['id']}/refunds", json=body,
                                          headers=self.rig.gw.merchant()))
        assert r.status_code in (201, 409, 422), r.text
        self._observe()

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 50))
    def close(self, i: int) -> None:
        order = self.orders[i % len(self.orders)]
        r = self.run(self.rig.gw.api.post(f"/v1/orders/{order['id']}/close",
                                          headers=self.rig.gw.merchant()))
        assert r.status_code in (200, 409, 502), r.text
        self._observe()

    @rule()
    def expire(self) -> None:
        self.run(self.rig.run_jobs(seconds=1900))  # past every order's 30-minute expiry
        self._observe()

    async def _resend(self, sim: Any) -> None:
        self.rig.gw.world.latipay.notify(sim)  # the provider sends the same event again
        await self.rig.gw.world.notifier.drain(5)

    def _sim_belongs(self, sim: Any, order_id: str) -> bool:
        detail = self.run(self.rig.gw.get_order(order_id))
        numbers = {p["provider_order_no"] for p in detail["payments"]}
        return sim.merchant_reference in numbers

    @invariant()
    def transitions_are_legal(self) -> None:
        for path in self.history.values():
            for a, b in itertools.pairwise(path):
                # The observer can miss an intermediate state; require a path in the table.
                assert _reachable(OrderStatus(a), OrderStatus(b)), path

    @invariant()
    def money_rules_hold(self) -> None:
        for order in self.orders:
            detail = self.run(self.rig.gw.get_order(order["id"]))
            types = [e["type"] for e in detail["timeline"]]
            assert types.count("order.paid") + types.count("order.paid_after_close") <= 1
            refunded = sum(int(r["amount"].replace(".", "")) for r in detail["refunds"]
                           if r["status"] == "succeeded")
            paid = int(detail["amount"].replace(".", ""))
            assert refunded == int(detail["amount_refunded"].replace(".", "")) <= paid
            live = sum(int(r["amount"].replace(".", "")) for r in detail["refunds"]
                       if r["status"] != "failed")
            assert live <= paid
            changes = [s for s in self.history.get(order["id"], [])[1:]]
            for status in set(changes) - {"partially_refunded", "refunded"}:
                assert types.count(STATUS_EVENT[status]) == 1, (status, types)
            assert types.count("refund.succeeded") == sum(
                1 for r in detail["refunds"] if r["status"] == "succeeded")
            self._matches_simulator(detail)

    def _matches_simulator(self, detail: dict[str, Any]) -> None:
        if not detail["payments"]:
            return
        number = detail["payments"][0]["provider_order_no"]
        sims = [o for o in self.rig.gw.world.latipay.orders.values()
                if o.merchant_reference == number]
        if not sims:
            return
        sim = sims[0]
        refunded = int(detail["amount_refunded"].replace(".", ""))
        assert sim.refunded_minor == refunded
        if OrderStatus(detail["status"]) in PAID_STATES:
            assert sim.status == "paid"
        if sim.status == "canceled":
            assert detail["status"] in ("closed", "failed")


def _reachable(a: OrderStatus, b: OrderStatus) -> bool:
    frontier, seen = [a], {a}
    while frontier:
        state = frontier.pop()
        for nxt in ORDER_TRANSITIONS[state]:
            if nxt == b:
                return True
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return False


PaymentFlow.TestCase.settings = settings(
    max_examples=20, stateful_step_count=15, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPaymentFlow = PaymentFlow.TestCase
