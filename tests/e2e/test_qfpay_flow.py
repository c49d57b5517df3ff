"""The whole life of a WeChat mini-program payment with QFPay, through the HTTP API."""

from __future__ import annotations

import json

from minigate.clock import FrozenClock
from minigate.jobs.runner import JobRunner
from minigate.providers.qfpay import signing
from minigate.sandbox import credentials as cred
from tests.support import Harness, harness_settings, start_harness


async def _paid_order(h: Harness, amount: str = "88.00") -> dict[str, object]:
    order = await h.create_order(provider="qfpay", currency="HKD", amount=amount)
    pay = await h.pay(order)
    assert (await h.shopper_pays(pay)) == {"errMsg": "requestPayment:ok"}
    await h.wait_status(str(order["id"]), "paid")
    return order


async def test_order_pay_notify_refund(gateway: Harness) -> None:
    order = await gateway.create_order(provider="qfpay", currency="HKD", amount="88.00")
    pay = await gateway.pay(order)
    assert pay["provider"] == "qfpay" and pay["channel"] == "wechat"
    assert {"timeStamp", "nonceStr", "package", "signType", "paySign"} <= set(pay["wechat"])
    assert pay["wechat"]["appId"] == cred.MINI_APP_ID
    assert pay["wechat"]["package"].startswith("prepay_id=")
    assert await gateway.pay(order) == pay  # the same prepay, never a second QFPay order

    assert (await gateway.shopper_pays(pay)) == {"errMsg": "requestPayment:ok"}
    paid = await gateway.wait_status(order["id"], "paid")
    assert [e["type"] for e in paid["timeline"]].count("order.paid") == 1
    txn = next(t for t in gateway.world.qfpay.txns.values() if t.kind == "payment")
    assert txn.amount_minor == 8800  # integer cents on the wire

    r = await gateway.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "30.00"},
                               headers=gateway.merchant())
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "succeeded" and r.json()["amount"] == "30.00"
    assert txn.refunded_minor == 3000
    too_much = await gateway.api.post(f"/v1/orders/{order['id']}/refunds",
                                      json={"amount": "58.01"}, headers=gateway.merchant())
    assert too_much.status_code == 422, too_much.text
    assert txn.refunded_minor == 3000
    rest = await gateway.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "58.00"},
                                  headers=gateway.merchant())
    assert rest.status_code == 201 and rest.json()["status"] == "succeeded"
    final = await gateway.get_order(order["id"])
    assert final["status"] == "refunded" and final["amount_refunded"] == "88.00"


async def test_duplicate_and_forged_notifications(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    order = await _paid_order(h)
    await h.world.notifier.drain()
    before = await h.get_order(str(order["id"]))
    txn = next(iter(h.world.qfpay.txns.values()))
    body = h.world.qfpay.notification_body(txn)
    sign = signing.notification_signature(body, cred.QFPAY_CLIENT_KEY)

    dup = await h.api.post("/v1/notify/qfpay", content=body,
                           headers={"X-QF-SIGN": sign, "Content-Type": "application/json"})
    assert (dup.status_code, dup.text) == (200, "SUCCESS")
    assert await h.get_order(str(order["id"])) == before

    forged = json.dumps(json.loads(body) | {"txamt": "1"}).encode()
    bad = await h.api.post("/v1/notify/qfpay", content=forged,
                           headers={"X-QF-SIGN": sign, "Content-Type": "application/json"})
    assert (bad.status_code, bad.text) == (400, "FAIL")
    respaced = json.dumps(json.loads(body), separators=(",", ":")).encode()
    bad = await h.api.post("/v1/notify/qfpay", content=respaced, headers={"X-QF-SIGN": sign})
    assert (bad.status_code, bad.text) == (400, "FAIL")
    assert await h.get_order(str(order["id"])) == before


async def test_in_progress_create_settles_by_query(sqlite_url: str) -> None:
    clock = FrozenClock()
    h = await start_harness(harness_settings(sqlite_url), clock=clock)
    try:
        control = await h.api.post("/sandbox/qfpay/control", json={"in_progress": "1143"})
        assert control.status_code == 200
        await h.api.post("/sandbox/control/notifications", json={"blackhole": True})
        order = await h.create_order(provider="qfpay", currency="HKD", amount="20.00")
        pay = await h.pay(order)
        assert (await h.get_order(order["id"]))["status"] == "pending"
        runner = JobRunner(h.ctx, h.runtime.http)
        clock.advance(30)
        await runner.run_once()  # QFPay still says 1143: stays pending
        assert (await h.get_order(order["id"]))["status"] == "pending"

        assert (await h.shopper_pays(pay)) == {"errMsg": "requestPayment:ok"}
        assert (await h.get_order(order["id"]))["status"] == "pending"  # no notification
        clock.advance(60)
        await runner.run_once()
        paid = await h.get_order(order["id"])
        assert paid["status"] == "paid"
        assert [e["type"] for e in paid["timeline"]].count("order.paid") == 1
    finally:
        await h.api.aclose()
        await h.runtime.stop()


async def test_close_unpaid_order(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    order = await h.create_order(provider="qfpay", currency="HKD", amount="10.00")
    pay = await h.pay(order)
    r = await h.api.post(f"/v1/orders/{order['id']}/close", headers=h.merchant())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    assert (await h.shopper_pays(pay))["errMsg"] == "requestPayment:fail order closed"


async def test_refund_refused_by_qfpay_gives_the_reservation_back(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    order = await _paid_order(h, amount="50.00")
    txn = next(t for t in h.world.qfpay.txns.values() if t.kind == "payment")
    txn.refunded_minor = 4900  # refunded elsewhere (e.g. QFPay's merchant portal)
    r = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "2.00"},
                         headers=h.merchant())
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "failed" and "1272" in r.json()["failure_reason"]
    after = await h.get_order(str(order["id"]))
    assert after["status"] == "paid" and after["amount_refunded"] == "0.00"
    ok = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "1.00"},
                          headers=h.merchant())
    assert ok.json()["status"] == "succeeded"  # the failed refund's reservation is free again


async def test_refund_beyond_qfpays_unsettled_balance_fails_with_1269(
        sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    order = await _paid_order(h, amount="50.00")
    await h.api.post("/sandbox/qfpay/control", json={"unsettled_minor": 1000})
    r = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "10.01"},
                         headers=h.merchant())
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "failed" and "1269" in r.json()["failure_reason"]
    assert (await h.get_order(str(order["id"])))["amount_refunded"] == "0.00"
    ok = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "10.00"},
                          headers=h.merchant())
    assert ok.json()["status"] == "succeeded"
    after = await h.get_order(str(order["id"]))
    assert after["status"] == "partially_refunded" and after["amount_refunded"] == "10.00"
