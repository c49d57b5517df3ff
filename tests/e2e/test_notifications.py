"""Notifications: forged ones refused, duplicates harmless, mismatched amounts flagged."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from minigate.providers.latipay import signing
from minigate.sandbox import credentials as cred
from tests.support import Harness


async def _pending_order(gw: Harness, amount: str = "12.30") -> tuple[dict[str, Any], str]:
    order = await gw.create_order(amount=amount)
    await gw.pay(order)
    detail = await gw.get_order(order["id"])
    return order, detail["payments"][0]["provider_order_no"]


def _form(reference: str, amount: str, status: str = "paid", key: str = cred.LATIPAY_API_KEY,
          currency: str = "NZD") -> bytes:
    sig = signing.result_signature(key, reference, "wechat", status, currency, amount)
    return urlencode({"merchant_reference": reference, "order_id": "2026000000000001",
                      "currency": currency, "amount": amount, "payment_method": "wechat",
                      "status": status, "pay_time": "2026-01-01 10:00:00",
                      "signature": sig}).encode()


async def _notify(gw: Harness, body: bytes) -> Any:
    return await gw.api.post("/v1/notify/latipay", content=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})


async def test_forged_notification_changes_nothing(gateway: Harness) -> None:
    order, reference = await _pending_order(gateway)
    before = await gateway.row_counts()
    r = await _notify(gateway, _form(reference, "12.30", key="not-the-key"))
    assert r.status_code == 400 and r.text != "sent"
    after = await gateway.get_order(order["id"])
    assert after["status"] == "pending" and not after["paid"]
    assert after["payments"][0]["status"] == "pending"
    assert "order.paid" not in [e["type"] for e in after["timeline"]]
    counts = await gateway.row_counts()
    assert counts["notifications"] == before["notifications"]  # not even recorded
    # At most an internal "unverified" note that brings the next query forward.
    assert counts["events"] - before["events"] <= 1
    assert {e["type"] for e in after["timeline"]} - {"order.created", "order.pending"} <= {
        "security.notification_unverified"}


async def test_duplicate_notification_acked_and_changes_nothing(gateway: Harness) -> None:
    order, reference = await _pending_order(gateway)
    body = _form(reference, "12.30")
    first = await _notify(gateway, body)
    second = await _notify(gateway, body)
    assert (first.status_code, first.text) == (200, "sent")
    assert (second.status_code, second.text) == (200, "sent")
    after = await gateway.get_order(order["id"])
    assert after["status"] == "paid"
    assert [e["type"] for e in after["timeline"]].count("order.paid") == 1
    counts = await gateway.row_counts()
    third = await _notify(gateway, body)
    assert (third.status_code, third.text) == (200, "sent")
    assert await gateway.row_counts() == counts  # the duplicate wrote nothing at all
    assert await gateway.get_order(order["id"]) == after


async def test_signed_notification_with_wrong_amount_does_not_pay(gateway: Harness) -> None:
    order, reference = await _pending_order(gateway, amount="12.30")
    r = await _notify(gateway, _form(reference, "0.01"))
    assert r.status_code == 200  # recorded and handled: no point in the provider re-sending
    after = await gateway.get_order(order["id"])
    assert after["status"] == "pending" and after["flagged"] is True
    types = [e["type"] for e in after["timeline"]]
    assert "security.notification_mismatch" in types and "order.paid" not in types


async def test_signed_notification_with_wrong_currency_does_not_pay(sqlite_gateway: Harness) -> None:
    order, reference = await _pending_order(sqlite_gateway)
    await _notify(sqlite_gateway, _form(reference, "12.30", currency="AUD"))
    after = await sqlite_gateway.get_order(order["id"])
    assert after["status"] == "pending" and after["flagged"] is True


async def test_notification_for_unknown_order_is_acked_and_recorded(sqlite_gateway: Harness) -> None:
    r = await _notify(sqlite_gateway, _form("MGnosuchorder", "1.00"))
    assert (r.status_code, r.text) == (200, "sent")


async def test_oversized_notification_refused(sqlite_gateway: Harness) -> None:
    r = await _notify(sqlite_gateway, b"a=" + b"x" * 70_000)
    assert r.status_code == 413


async def test_simulator_notification_is_retried_until_sent(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order()
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    await gw.world.notifier.drain(5)
    delivery = gw.world.notifier.deliveries[-1]
    assert delivery.acked and delivery.statuses[-1] == 200


async def test_a_connector_crash_on_hostile_input_is_a_rejection(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order, reference = await _pending_order(gw)
    client = gw.ctx.providers["latipay"]

    def explode(_: object) -> None:
        raise KeyError("unexpected shape")

    original = client.verify_notification
    client.verify_notification = explode
    try:
        r = await _notify(gw, _form(reference, "12.30"))
    finally:
        client.verify_notification = original
    assert r.status_code == 400 and r.text != "sent"
    assert (await gw.get_order(order["id"]))["status"] == "pending"


async def test_a_database_failure_is_a_failure_ack_and_the_retry_pays(
    sqlite_gateway: Harness, monkeypatch: Any
) -> None:
    from sqlalchemy.exc import OperationalError

    from minigate.store import repo
    from minigate.store.hot import HotStore

    gw = sqlite_gateway
    order, reference = await _pending_order(gw)
    body = _form(reference, "12.30")

    async def database_down(*_: object, **__: object) -> None:
        raise OperationalError("SELECT …", {}, ConnectionError("server closed the connection"))

    with monkeypatch.context() as patch:  # both paths: the lean one and the ORM's
        patch.setattr(HotStore, "transaction", database_down)
        patch.setattr(HotStore, "steps", database_down)
        patch.setattr(repo, "payment_with_order", database_down)
        r = await _notify(gw, body)
    assert r.status_code == 400 and r.text != "sent"  # Latipay sends it again
    assert (await gw.get_order(order["id"]))["status"] == "pending"
    again = await _notify(gw, body)  # nothing was recorded, so the retry is not a duplicate
    assert (again.status_code, again.text) == (200, "sent")
    assert (await gw.get_order(order["id"]))["status"] == "paid"
