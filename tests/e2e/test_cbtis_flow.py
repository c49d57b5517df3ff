"""The whole life of a WeChat mini-program payment with CBTIS, through the HTTP API.

CBTIS webhooks are only hints: the order is paid once the reconciler's query says so.
"""

from __future__ import annotations

import json
import time

from minigate.jobs.runner import JobRunner
from minigate.providers.cbtis import signing
from minigate.sandbox import credentials as cred
from tests.support import Harness


async def test_order_pay_webhook_query_refund(gateway_with_jobs: Harness) -> None:
    h = gateway_with_jobs
    order = await h.create_order(provider="cbtis", currency="HKD", amount="56.80")
    pay = await h.pay(order)
    assert pay["provider"] == "cbtis"
    assert {"timeStamp", "nonceStr", "package", "signType", "paySign"} <= set(pay["wechat"])
    assert await h.pay(order) == pay
    intent = next(iter(h.world.cbtis.intents.values()))
    assert intent.body["amount"] == "56.80"  # major units (assumption A1)

    assert (await h.shopper_pays(pay)) == {"errMsg": "requestPayment:ok"}
    paid = await h.wait_status(order["id"], "paid")
    assert [e["type"] for e in paid["timeline"]].count("order.paid") == 1

    r = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "6.80"},
                         headers=h.merchant())
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "succeeded" and r.json()["amount"] == "6.80"
    assert intent.refunded_minor == 680
    too_much = await h.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "50.01"},
                                headers=h.merchant())
    assert too_much.status_code == 422
    final = await h.get_order(order["id"])
    assert final["status"] == "partially_refunded" and final["amount_refunded"] == "6.80"


def _signed_webhook(body: bytes) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    return {"x-timestamp": ts, "content-type": "application/json",
            "x-signature": signing.webhook_signature(cred.CBTIS_WEBHOOK_SECRET, ts, body)}


async def test_webhook_alone_never_marks_paid(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway  # no job runner: nothing queries unless we say so
    order = await h.create_order(provider="cbtis", currency="HKD", amount="10.00")
    await h.pay(order)
    intent = next(iter(h.world.cbtis.intents.values()))
    body = json.dumps({"notify_type": "payment_success", "data": {
        "order_id": intent.order_id, "merchant_order_id": intent.merchant_order_id}}).encode()
    # A correctly signed "payment_success" for an intent the shopper never paid.
    r = await h.api.post("/v1/notify/cbtis", content=body, headers=_signed_webhook(body))
    assert r.status_code == 200
    assert (await h.get_order(order["id"]))["status"] == "pending"
    await JobRunner(h.ctx, h.runtime.http).run_once()  # the hint made a query due now
    assert (await h.get_order(order["id"]))["status"] == "pending"
    assert intent.status == "PENDING"


async def test_real_webhook_is_settled_by_the_query(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    order = await h.create_order(provider="cbtis", currency="HKD", amount="10.00")
    pay = await h.pay(order)
    await h.shopper_pays(pay)
    await h.world.notifier.drain()
    delivery = h.world.notifier.deliveries[-1]
    assert delivery.acked and delivery.statuses == [200]
    assert (await h.get_order(order["id"]))["status"] == "pending"  # not before the query
    await JobRunner(h.ctx, h.runtime.http).run_once()
    assert (await h.get_order(order["id"]))["status"] == "paid"


async def test_forged_webhook_is_refused(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    body = b'{"notify_type":"payment_success","data":{"merchant_order_id":"MGx"}}'
    headers = _signed_webhook(body)
    headers["x-signature"] = "0" * 64
    r = await h.api.post("/v1/notify/cbtis", content=body, headers=headers)
    assert r.status_code == 401
