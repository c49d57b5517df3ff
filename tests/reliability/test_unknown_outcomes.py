"""A provider call that times out after it was sent leaves the payment or refund
``unknown``; the reconciler settles it by query and never sends a new provider number."""

from __future__ import annotations

import pytest

from minigate.store import repo
from tests.reliability.conftest import Rig

REFUND_PATHS = {"latipay": "/sandbox/latipay/refund",
                "wechatpay": "/sandbox/wechatpay/v3/refund/domestic/refunds"}


async def _paid(rig: Rig, provider: str) -> dict:
    currency = "CNY" if provider == "wechatpay" else "NZD"
    order = await rig.gw.create_order(provider=provider, currency=currency, amount="10.00")
    await rig.gw.shopper_pays(await rig.gw.pay(order))
    await rig.gw.wait_status(order["id"], "paid")
    return order


@pytest.mark.parametrize("provider", ["latipay", "wechatpay"])
async def test_refund_with_lost_reply_is_settled_by_the_reconciler(rig: Rig,
                                                                   provider: str) -> None:
    order = await _paid(rig, provider)
    rig.gw.world.notifier.options.blackhole = True  # only a query can tell us now
    rig.faults.lose_reply[REFUND_PATHS[provider]] = 1
    r = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "4.00"},
                              headers=rig.gw.merchant())
    assert r.status_code == 201 and r.json()["status"] == "unknown", r.text
    number = r.json()["provider_refund_no"]
    more = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "6.01"},
                                 headers=rig.gw.merchant())
    assert more.status_code == 422  # the unknown refund's amount stays reserved
    await rig.run_jobs()
    assert (await rig.gw.get_order(order["id"]))["refunds"][0]["status"] == "unknown"
    await rig.run_jobs(seconds=61)
    detail = await rig.gw.get_order(order["id"])
    assert [(x["status"], x["provider_refund_no"]) for x in detail["refunds"]] == [
        ("succeeded", number)]
    assert detail["status"] == "partially_refunded" and detail["amount_refunded"] == "4.00"
    assert [e["type"] for e in detail["timeline"]].count("refund.succeeded") == 1
    if provider == "latipay":
        sim = next(iter(rig.gw.world.latipay.orders.values()))
        assert sim.refunded_minor == 400
    else:
        sim_order = next(iter(rig.gw.world.wechatpay.orders.values()))
        assert list(sim_order.refunds) == [number] and sim_order.refunded() == 400


async def test_payment_with_lost_reply_is_settled_by_the_reconciler(rig: Rig) -> None:
    order = await rig.gw.create_order()
    rig.faults.lose_reply["/sandbox/latipay/v2/miniapppay"] = 1
    code = await rig.gw.login_code()
    r = await rig.gw.api.post(f"/v1/client/orders/{order['id']}/pay",
                              json={"client_token": order["client_token"], "login_code": code})
    assert r.status_code == 502
    assert (await rig.gw.get_order(order["id"]))["status"] == "unknown"
    await rig.run_jobs(seconds=6)  # the provider has the order: the query says pending
    detail = await rig.gw.get_order(order["id"])
    assert detail["status"] == "pending"
    async with rig.gw.ctx.sessions() as session:
        payment = await repo.payment_for_order(session, order["id"])
    assert payment is not None and payment.status == "pending"
    # Every status the order took is on its timeline, once per change.
    async with rig.gw.ctx.sessions() as session:
        row = await repo.get_order(session, order["id"])
    assert row is not None
    changes = [e["type"] for e in detail["timeline"]
               if e["type"] in ("order.pending", "order.unknown", "order.paid")]
    assert changes == ["order.unknown", "order.pending"]
    assert row.version - 1 == len(changes)
    pay = await rig.gw.pay(order)  # the mini program retries: same provider order
    assert len(rig.gw.world.latipay.orders) == 1
    await rig.gw.shopper_pays(pay)
    await rig.gw.wait_status(order["id"], "paid")
