"""WeChat Pay direct, API v3 (provider ``wechatpay``) and v2 (``wechatpay-v2``), end to end
through minigate's HTTP API against the stateful simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest

from minigate.clock import FrozenClock
from minigate.providers.wechatpay import v3sign
from minigate.providers.wechatpay.xml import parse_xml
from tests.support import Harness, harness_settings, start_harness

PROVIDERS = ["wechatpay", "wechatpay-v2"]


async def refund(gateway: Harness, order_id: str, amount: str) -> dict[str, object]:
    r = await gateway.api.post(f"/v1/orders/{order_id}/refunds", json={"amount": amount},
                               headers=gateway.merchant())
    assert r.status_code == 201, r.text
    return dict(r.json())


async def wait_refund(gateway: Harness, refund_id: str, status: str) -> dict[str, object]:
    async with asyncio.timeout(5):
        while True:
            r = await gateway.api.get(f"/v1/refunds/{refund_id}", headers=gateway.merchant())
            if r.json()["status"] == status:
                return dict(r.json())
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_order_pay_notify_partial_refund(gateway: Harness, provider: str) -> None:
    order = await gateway.create_order(provider=provider, currency="CNY", amount="88.80")
    pay = await gateway.pay(order)
    assert pay["provider"] == provider
    wechat = pay["wechat"]
    assert set(wechat) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert wechat["signType"] == ("RSA" if provider == "wechatpay" else "HMAC-SHA256")
    # Paying again returns the same prepay.
    assert await gateway.pay(order) == pay
    prepay = gateway.world.wechat.prepays[wechat["package"].removeprefix("prepay_id=")]
    assert prepay.amount_minor == 8880 and prepay.currency == "CNY"

    assert await gateway.shopper_pays(pay) == {"errMsg": "requestPayment:ok"}
    paid = await gateway.wait_status(order["id"], "paid")
    assert [e["type"] for e in paid["timeline"]].count("order.paid") == 1

    first = await refund(gateway, order["id"], "20.00")
    assert first["amount"] == "20.00"
    await wait_refund(gateway, str(first["id"]), "succeeded")
    final = await gateway.wait_status(order["id"], "partially_refunded")
    assert final["amount_refunded"] == "20.00"
    sim_order = next(o for o in gateway.world.wechatpay.orders.values() if o.prepay is prepay)
    assert sim_order.refunded() == 2000

    # More than what is left is refused by minigate's ledger before the provider is asked.
    r = await gateway.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "70.00"},
                               headers=gateway.merchant())
    assert r.status_code == 422
    rest = await refund(gateway, order["id"], "68.80")
    await wait_refund(gateway, str(rest["id"]), "succeeded")
    assert (await gateway.wait_status(order["id"], "refunded"))["amount_refunded"] == "88.80"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_close_too_early_then_allowed(database_url: str, provider: str) -> None:
    """WeChat Pay refuses to close an order in its first minutes, so minigate refuses
    first (nothing sent), up to the last half second of that age, and closes from then on. The
    clock is the test's: on a loaded machine the sandbox's compressed age (1 s) could pass
    between two requests."""
    clock = FrozenClock()
    gateway = await start_harness(harness_settings(database_url), clock=clock)
    try:
        order = await gateway.create_order(provider=provider, currency="CNY", amount="10.00")
        pay = await gateway.pay(order)
        age = gateway.ctx.provider(provider).min_close_age
        for elapsed in (0, age - 0.5):
            clock.advance(elapsed)
            r = await gateway.api.post(f"/v1/orders/{order['id']}/close",
                                       headers=gateway.merchant())
            assert r.status_code == 409 and r.json()["error"]["code"] == "close_too_early"
            assert (await gateway.get_order(order["id"]))["status"] == "pending"
        prepay = gateway.world.wechat.prepays[pay["wechat"]["package"].removeprefix("prepay_id=")]
        assert prepay.status != "CLOSED"
        clock.advance(0.5)
        r = await gateway.api.post(f"/v1/orders/{order['id']}/close", headers=gateway.merchant())
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "closed"
        assert prepay.status == "CLOSED"
        assert (await gateway.shopper_pays(pay))["errMsg"] == "requestPayment:fail order closed"
    finally:
        await gateway.api.aclose()
        await gateway.runtime.stop()


async def test_v3_signtest_probe_and_duplicates(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    r = await gw.api.post("/sandbox/wechatpay/control", json={"probe_next": 1, "duplicates": 2})
    assert r.status_code == 200
    order = await gw.create_order(provider="wechatpay", currency="CNY", amount="5.00")
    await gw.shopper_pays(await gw.pay(order))
    paid = await gw.wait_status(order["id"], "paid")
    await gw.world.notifier.drain(2)
    assert gw.world.wechatpay.probe_answers and gw.world.wechatpay.probe_answers[0] >= 400
    assert [e["type"] for e in paid["timeline"]].count("order.paid") == 1
    assert len(gw.world.notifier.deliveries) == 2  # the probe, and one event sent 3 times


async def test_v3_switch_from_certificate_to_public_key(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    client = gw.ctx.provider("wechatpay")
    for signing in ("certificate", "public_key"):
        r = await gw.api.post("/sandbox/wechatpay/control", json={"signing": signing})
        assert r.json()["signing"] == signing
        order = await gw.create_order(provider="wechatpay", currency="CNY", amount="1.00")
        await gw.shopper_pays(await gw.pay(order))
        await gw.wait_status(order["id"], "paid")
    keys = gw.world.wechatpay.keys
    assert client.ring.get(keys.platform_serial) is not None  # fetched from /v3/certificates
    assert client.ring.get(keys.public_key_id) is not None


async def test_v3_forged_notification_rejected(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    sim = gw.world.wechatpay
    body = json.dumps({"id": "EV-forged", "event_type": "TRANSACTION.SUCCESS"}).encode()
    headers = sim.signed_headers(body)
    r = await gw.api.post("/v1/notify/wechatpay", content=body + b" ", headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "FAIL"
    headers["Wechatpay-Serial"] = "0123456789ABCDEF"  # no such certificate, even after refresh
    r = await gw.api.post("/v1/notify/wechatpay", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "FAIL"


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<xml><return_code>&x;</return_code></xml>",
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;">]><xml><return_code>&c;</return_code></xml>',
])
async def test_v2_hostile_xml_gets_fail_ack(sqlite_gateway: Harness, payload: bytes) -> None:
    r = await sqlite_gateway.api.post("/v1/notify/wechatpay-v2", content=payload)
    assert r.status_code == 400
    assert parse_xml(r.content)["return_code"] == "FAIL"
    assert b"root:" not in r.content


async def test_v2_notification_ack_is_success_xml(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order(provider="wechatpay-v2", currency="CNY", amount="3.00")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    await gw.world.notifier.drain(2)
    delivery = gw.world.notifier.deliveries[-1]
    assert delivery.acked and delivery.statuses == [200]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_refund_closed_then_abnormal_by_notification(gateway: Harness,
                                                           provider: str) -> None:
    """REFUND.CLOSED (v2 REFUNDCLOSE) fails the refund and frees its amount;
    REFUND.ABNORMAL (v2 CHANGE) is not final: the refund stays pending. No jobs run here,
    so only the refund notifications can move the refunds."""
    gw = gateway
    order = await gw.create_order(provider=provider, currency="CNY", amount="30.00")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    sim = gw.world.wechatpay

    r = await gw.api.post("/sandbox/wechatpay/control", json={"refund_outcome": "CLOSED"})
    assert r.json()["refund_outcome"] == "CLOSED"
    closed = await refund(gw, order["id"], "30.00")
    failed = await wait_refund(gw, str(closed["id"]), "failed")
    assert failed["failure_reason"]
    await gw.world.notifier.drain(2)
    delivery = next(d for d in gw.world.notifier.deliveries
                    if d.label.endswith(str(closed["provider_refund_no"])))
    assert delivery.acked and delivery.statuses[-1] in (200, 204)
    after = await gw.get_order(order["id"])
    assert after["status"] == "paid" and after["amount_refunded"] == "0.00"

    await gw.api.post("/sandbox/wechatpay/control", json={"refund_outcome": "ABNORMAL"})
    abnormal = await refund(gw, order["id"], "30.00")  # the closed refund's money is free again
    await gw.world.notifier.drain(2)
    delivery = next(d for d in gw.world.notifier.deliveries
                    if d.label.endswith(str(abnormal["provider_refund_no"])))
    assert delivery.acked
    r = await gw.api.get(f"/v1/refunds/{abnormal['id']}", headers=gw.merchant())
    assert r.json()["status"] == "pending"
    sim_refund = sim.refunds[str(abnormal["provider_refund_no"])]
    assert sim_refund.status == "ABNORMAL"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_oversized_notification_refused_unread(sqlite_gateway: Harness,
                                                     provider: str) -> None:
    body = b"<xml><return_code>SUCCESS</return_code><a>" + b"x" * 70_000 + b"</a></xml>"
    r = await sqlite_gateway.api.post(f"/v1/notify/{provider}", content=body)
    assert r.status_code == 413


async def test_v3_stale_and_probe_notifications_rejected_through_the_api(
        sqlite_gateway: Harness) -> None:
    """A correctly signed notification replayed 6 minutes late, and a SIGNTEST probe with a
    known serial, both get 4xx {"code":"FAIL"} and change nothing."""
    gw = sqlite_gateway
    sim = gw.world.wechatpay
    order = await gw.create_order(provider="wechatpay", currency="CNY", amount="2.00")
    pay = await gw.pay(order)
    sim_order = next(iter(sim.orders.values()))
    sim_order.prepay.status, sim_order.prepay.transaction_id = "SUCCESS", "4200000000000001"
    sim_order.prepay.paid_at = gw.ctx.clock.now()
    captured: list[tuple[bytes, dict[str, str]]] = []
    sim.world.notifier.options.blackhole = True  # build the notification, send it ourselves
    original = sim.world.notifier.send

    def capture(label: str, url: str, body: bytes, headers: object, *args: object,
                **kwargs: object) -> object:
        factory = kwargs.get("headers_factory")
        assert callable(factory)
        captured.append((body, dict(factory())))
        return original(label, url, body, headers, *args, **kwargs)  # type: ignore[arg-type]

    sim.world.notifier.send = capture  # type: ignore[method-assign]
    await sim.paid(sim_order)
    body, headers = captured[0]
    # Validly signed, but over a timestamp 6 minutes old.
    old = str(int(headers["Wechatpay-Timestamp"]) - 360)
    _, key = sim._signer(headers["Wechatpay-Serial"])
    stale = {**headers, "Wechatpay-Timestamp": old, "Wechatpay-Signature": v3sign.rsa_sign(
        key, v3sign.response_message(old, headers["Wechatpay-Nonce"], body))}
    probe = {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + "A" * 40}
    for bad in (stale, probe):
        r = await gw.api.post("/v1/notify/wechatpay", content=body, headers=bad)
        assert r.status_code == 400 and r.json()["code"] == "FAIL"
    assert (await gw.get_order(order["id"]))["status"] == "pending"
    r = await gw.api.post("/v1/notify/wechatpay", content=body, headers=headers)
    assert r.status_code in (200, 204) and r.content == b""
    assert (await gw.get_order(order["id"]))["status"] == "paid"
    assert pay["provider"] == "wechatpay"
