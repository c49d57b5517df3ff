"""The fault soak's parts that can be checked fast: the invariant checker on fabricated
ledgers (each kind of violation must be flagged, a clean ledger must pass), the fault plan,
the webhook endpoint's decisions, and the sandbox's read-only ledger route. The soak itself
runs in CI as ``python -m bench chaos --short`` (.ci/run), not under pytest."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter

import httpx
import pytest

from bench.chaos import FAULT_KINDS, TIMED, Plan, schedule
from bench.chaos_check import Facts, MgOrder, MgRefund, SimOrder, check, refund_key, render
from bench.chaos_net import Receiver
from bench.cli import parse_args
from minigate.jobs import signing
from minigate.providers.latipay.signing import sign_request
from minigate.sandbox import credentials as cred
from minigate.sandbox.latipay import LatipayOrder
from minigate.sandbox.server import create_sandbox_app


def clean() -> Facts:
    """Two paid orders (one partly refunded under key k1), one expired unpaid order, every
    event delivered (one of them twice, which is allowed), one 503."""
    return Facts(
        sim=[SimOrder("MG1", 1000, "paid", 300, [("RF1 chaos k1", 300)]),
             SimOrder("MG2", 2000, "paid"),
             SimOrder("MG3", 500, "canceled")],
        orders=[MgOrder("ord_1", "ref-1", 1000, "partially_refunded", 300, 300, "MG1"),
                MgOrder("ord_2", "ref-2", 2000, "paid", 0, 0, "MG2"),
                MgOrder("ord_3", "ref-3", 500, "closed", 0, 0, "MG3"),
                MgOrder("ord_4", "ref-4", 700, "closed", 0, 0, None)],
        refunds=[MgRefund("rfd_1", "ord_1", "RF1", 300, "succeeded", "chaos k1")],
        deliverable={"evt_1": "order.paid", "evt_2": "order.paid", "evt_3": "refund.succeeded"},
        received=Counter({"evt_1": 1, "evt_2": 2, "evt_3": 1}),
        server_errors=[{"status": 503, "path": "POST /v1/orders", "code": "database_unavailable"}],
    )


def failed(facts: Facts) -> dict[str, int]:
    return {row.name: row.count for row in check(facts) if row.failed}


def test_a_clean_ledger_passes_and_duplicates_are_only_reported() -> None:
    rows = check(clean())
    assert [r.name for r in rows if r.failed] == []
    dup = next(r for r in rows if r.name.startswith("merchant events delivered more"))
    assert (dup.count, dup.violation, dup.details) == (1, False, ["evt_2 ×2"])
    assert "VIOLATION" not in render(rows)


def test_paid_at_the_provider_but_not_in_minigate_is_lost() -> None:
    f = clean()
    f.orders[1].status = "pending"  # MG2 paid at Latipay, minigate never heard
    f.sim.append(SimOrder("MG9", 100, "paid"))  # a payment minigate has no row for
    got = failed(f)
    assert got["paid at the provider, not in minigate (lost)"] == 2
    assert got["ledger mismatch: Σ paid − Σ refunded vs provider"] == 1


def test_an_order_paid_twice_and_created_twice() -> None:
    f = clean()
    f.orders.append(MgOrder("ord_5", "ref-2", 2000, "paid", 0, 0, "MG5"))
    f.sim.append(SimOrder("MG5", 2000, "paid"))
    got = failed(f)
    assert got["orders paid twice (per merchant_reference)"] == 1
    assert got["orders created twice (per merchant_reference)"] == 1


def test_an_orphan_order_with_the_same_reference_is_created_twice() -> None:
    f = clean()
    f.orders.append(MgOrder("ord_6", "ref-1", 1000, "closed", 0, 0, None))
    assert failed(f) == {"orders created twice (per merchant_reference)": 1}


def test_a_refund_sent_twice_for_one_key_under_two_numbers() -> None:
    f = clean()
    f.sim[0].refunds.append(("RF2 chaos k1", 300))
    f.sim[0].refunded_minor = 600
    f.refunds.append(MgRefund("rfd_2", "ord_1", "RF2", 300, "succeeded", "chaos k1"))
    f.orders[0].refunded_minor = f.orders[0].refund_reserved_minor = 600
    row = next(r for r in check(f) if r.name == "refunds sent twice (per Idempotency-Key)")
    assert row.failed and row.details == ["k1: refunded 2 times, as RF1, RF2"]
    # minigate booked both, so its ledger agrees with the provider: only the key says it
    assert failed(f) == {"refunds sent twice (per Idempotency-Key)": 1}


def test_a_refund_number_accepted_twice() -> None:
    f = clean()
    f.sim[1].refunds = [("RF7", 100), ("RF7", 100)]
    f.sim[1].refunded_minor = 200
    got = failed(f)
    assert got["refunds sent twice (per provider refund number)"] == 1
    assert got["ledger mismatch: Σ paid − Σ refunded vs provider"] == 1


def test_ledger_mismatch_when_minigate_books_a_refund_the_provider_never_made() -> None:
    f = clean()
    f.orders[1].refunded_minor = 500
    f.orders[1].status = "partially_refunded"
    f.refunds.append(MgRefund("rfd_3", "ord_2", "RF3", 500, "succeeded"))
    assert failed(f) == {"ledger mismatch: Σ paid − Σ refunded vs provider": 1}


def test_refunds_table_disagreeing_with_the_order_is_a_mismatch() -> None:
    f = clean()
    f.refunds.append(MgRefund("rfd_4", "ord_1", "RF4", 100, "succeeded"))
    assert failed(f) == {"ledger mismatch: Σ paid − Σ refunded vs provider": 1}


def test_refunds_above_the_paid_amount() -> None:
    f = clean()
    f.orders[1].refund_reserved_minor = 2500
    f.sim.append(SimOrder("MG8", 100, "paid", 150, [("RF8", 150)]))
    f.orders.append(MgOrder("ord_8", "ref-8", 100, "refunded", 150, 150, "MG8"))
    f.refunds.append(MgRefund("rfd_8", "ord_8", "RF8", 150, "succeeded"))
    assert failed(f) == {"refunds above the paid amount": 3}


def test_open_refunds_replays_events_signatures_and_non_503_errors() -> None:
    f = clean()
    f.refunds.append(MgRefund("rfd_9", "ord_2", "RF9", 100, "unknown"))
    f.orders[1].refund_reserved_minor = 100
    f.replay_mismatches.append("refund k2: rfd_a, then rfd_b")
    f.deliverable["evt_4"] = "refund.failed"
    f.bad_signatures = 2
    f.server_errors += [{"status": 500, "path": "POST /v1/orders", "code": "internal_error"},
                        {"status": 500, "path": "POST /v1/orders", "code": "internal_error"},
                        {"status": 502, "path": "POST /v1/client/orders/{id}/pay"}]
    got = failed(f)
    assert got == {"refunds still pending/unknown after settling": 1,
                   "replays answering another order/refund": 1,
                   "merchant events never delivered": 1,
                   "webhooks with a bad signature": 2,
                   "5xx other than 503": 3}
    table = render(check(f))
    assert "500 POST /v1/orders internal_error ×2" in table
    assert "evt_4 refund.failed" in table


def test_refund_key_comes_from_the_reference() -> None:
    assert refund_key("RF123 chaos rfd-1-ab") == "rfd-1-ab"
    assert refund_key("RF123") is None
    assert refund_key("RF123 chaos") is None


def _plan(short: bool, faults: int | None = None) -> Plan:
    return Plan.from_args(argparse.Namespace(short=short, duration=None, faults=faults, seed=7))


def test_fault_plan_covers_every_kind_inside_the_window() -> None:
    plan = _plan(short=False)
    faults = schedule(plan)
    assert len(faults) == plan.faults >= 25
    assert set(FAULT_KINDS) <= {kind for _, kind in faults}
    lo, hi = (plan.duration * f for f in plan.fault_window)
    assert all(lo <= at <= hi for at, _ in faults)
    assert [at for at, _ in faults] == sorted(at for at, _ in faults)
    assert schedule(plan) == faults  # the seed decides


def test_short_plan_has_each_kind_once_timed_ones_first() -> None:
    kinds = [kind for _, kind in schedule(_plan(short=True))]
    assert sorted(kinds) == sorted(FAULT_KINDS)
    assert set(kinds[:len(TIMED)]) == set(TIMED)


def test_cli_parses_chaos_options() -> None:
    args = parse_args(["chaos", "--short", "--seed", "5", "--faults", "9"])
    assert (args.command, args.short, args.seed, args.faults, args.duration) == (
        "chaos", True, 5, 9, None)


def _signed(secret: str, body: bytes) -> str:
    return signing.sign([secret], int(time.time()), body)


def test_receiver_verifies_fails_on_purpose_and_counts() -> None:
    receiver = Receiver("whsec_test", random.Random(1), fail_ratio=0.0)
    body = json.dumps({"id": "evt_1"}).encode()
    assert receiver.answer(_signed("whsec_test", body), body) == 200
    assert receiver.answer(_signed("whsec_other", body), body) == 400
    assert receiver.answer(_signed("whsec_test", body + b" "), body) == 400
    receiver.fail_ratio = 1.0
    assert receiver.answer(_signed("whsec_test", body), body) == 500
    assert (receiver.received, receiver.bad_signatures, receiver.failed_on_purpose,
            receiver.attempts) == (Counter({"evt_1": 1}), 2, 1, 4)


@pytest.mark.parametrize("repeat", [False, True])
async def test_sandbox_ledger_lists_each_accepted_refund(repeat: bool) -> None:
    app = create_sandbox_app(time_scale=0.001)
    world = app.state.world
    merchant = world.latipay.merchants[cred.LATIPAY_USER_ID]
    order = LatipayOrder(merchant, "MG1", "2026000000000001", 1000, merchant.currency,
                         "wechat", "http://127.0.0.1:1/n", {}, {}, status="paid")
    world.latipay.orders[(merchant.user_id, "MG1")] = order
    world.latipay.by_order_id[order.order_id] = order
    params = {"user_id": merchant.user_id, "order_id": order.order_id,
              "refund_amount": "3.00", "reference": "RF1 chaos k1"}
    params["signature"] = sign_request(params, merchant.api_key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sandbox.test") as http:
        assert (await http.post("/sandbox/latipay/refund", json=params)).json()["code"] == 0
        if repeat:  # the same refund number again: "already done", not a second refund
            again = await http.post("/sandbox/latipay/refund", json=params)
            assert again.json()["code"] == 562
        ledger = (await http.get("/sandbox/_ledger")).json()
    assert ledger == {"latipay": [{
        "merchant_reference": "MG1", "order_id": order.order_id, "amount_minor": 1000,
        "currency": merchant.currency, "status": "paid", "refunded_minor": 300,
        "refunds": [{"reference": "RF1 chaos k1", "amount_minor": 300}]}]}
