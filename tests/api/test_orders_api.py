"""The merchant API's list, close and refund lookup (design.md §3.2), on both databases."""

from __future__ import annotations

from typing import Any

from tests.support import Harness


async def _list(gw: Harness, **params: Any) -> dict[str, Any]:
    r = await gw.api.get("/v1/orders", params=params, headers=gw.merchant())
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_list_pages_with_a_cursor_newest_first(gateway: Harness) -> None:
    created = [(await gateway.create_order(amount=f"{n}.00"))["id"] for n in range(1, 6)]
    seen: list[str] = []
    stamps: list[str] = []
    page = await _list(gateway, limit=2)
    pages = 1
    while True:
        assert len(page["data"]) <= 2
        seen += [o["id"] for o in page["data"]]
        stamps += [o["created_at"] for o in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        page = await _list(gateway, limit=2, cursor=page["next_cursor"])
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(created) and len(set(seen)) == 5  # every order once
    assert stamps == sorted(stamps, reverse=True)  # newest first


async def test_list_filters_by_status_and_provider(gateway: Harness) -> None:
    latipay = await gateway.create_order()
    qfpay = await gateway.create_order(provider="qfpay", currency="HKD")
    await gateway.pay(latipay)  # latipay order is now pending
    by_provider = await _list(gateway, provider="qfpay")
    assert [o["id"] for o in by_provider["data"]] == [qfpay["id"]]
    pending = await _list(gateway, status="pending")
    assert [o["id"] for o in pending["data"]] == [latipay["id"]]
    assert (await _list(gateway, status="pending", provider="qfpay"))["data"] == []
    assert (await _list(gateway, status="paid"))["data"] == []


async def test_list_rejects_bad_parameters(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    for params, param in (({"status": "bogus"}, "status"), ({"cursor": "garbage"}, "cursor"),
                          ({"limit": 0}, "limit"), ({"limit": 101}, "limit")):
        r = await gw.api.get("/v1/orders", params=params, headers=gw.merchant())
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["param"] == param


async def test_close_an_unpaid_latipay_order(gateway: Harness) -> None:
    order = await gateway.create_order()
    pay = await gateway.pay(order)
    r = await gateway.api.post(f"/v1/orders/{order['id']}/close", headers=gateway.merchant())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    latipay_order = next(iter(gateway.world.latipay.orders.values()))
    assert latipay_order.status == "canceled"  # cancelled at Latipay too
    assert (await gateway.shopper_pays(pay))["errMsg"] != "requestPayment:ok"
    again = await gateway.api.post(f"/v1/orders/{order['id']}/close",
                                   headers=gateway.merchant())
    assert again.status_code == 200 and again.json()["status"] == "closed"


async def test_a_paid_order_cannot_be_closed(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order()
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    r = await gw.api.post(f"/v1/orders/{order['id']}/close", headers=gw.merchant())
    assert r.status_code == 409, r.text
    assert set(r.json()["error"]) >= {"type", "code", "message"}
    assert (await gw.get_order(order["id"]))["status"] == "paid"


async def test_get_refund_by_id(gateway: Harness) -> None:
    order = await gateway.create_order(amount="10.00")
    await gateway.shopper_pays(await gateway.pay(order))
    await gateway.wait_status(order["id"], "paid")
    r = await gateway.api.post(f"/v1/orders/{order['id']}/refunds",
                               json={"amount": "2.50", "reason": "spilt"},
                               headers=gateway.merchant())
    assert r.status_code == 201, r.text
    refund = r.json()
    assert refund["id"].startswith("rfd_")
    got = await gateway.api.get(f"/v1/refunds/{refund['id']}", headers=gateway.merchant())
    assert got.status_code == 200
    assert got.json()["id"] == refund["id"] and got.json()["amount"] == "2.50"
    assert got.json()["status"] == "succeeded"
    no_key = await gateway.api.get(f"/v1/refunds/{refund['id']}")
    assert no_key.status_code == 401
