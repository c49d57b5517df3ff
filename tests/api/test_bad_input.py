"""Bad input gets the one error shape, the right status, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from minigate.sandbox import credentials as cred
from tests.support import Harness

GOOD = {"merchant_reference": "M-1", "amount": "12.30", "currency": "NZD",
        "description": "Tea", "channel": "wechat"}


NOTHING = {"orders": 0, "payments": 0, "refunds": 0, "events": 0, "notifications": 0,
           "idempotency_keys": 0}


async def _count_orders(gw: Harness) -> int:
    r = await gw.api.get("/v1/orders", params={"limit": 100}, headers=gw.merchant())
    assert r.status_code == 200
    return len(r.json()["data"])


async def _assert_nothing_written(gw: Harness) -> None:
    """Read from the database itself: no order, payment, event or key was stored."""
    assert await gw.row_counts() == NOTHING
    assert await _count_orders(gw) == 0


def _assert_error(r: Any, status: int, code: str | None = None, param: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) <= {"type", "code", "message", "param"}
    assert error["type"] and error["message"]
    if code:
        assert error["code"] == code
    if param:
        assert error["param"] == param


@pytest.mark.parametrize(("change", "param"), [
    ({"amount": "12.345"}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"amount": "-1.00"}, "amount"),
    ({"amount": 12.3}, "amount"),
    ({"amount": "1e3"}, "amount"),
    ({"currency": "XYZ"}, "currency"),
    ({"currency": "nzd"}, "currency"),
    ({"channel": "paypal"}, "channel"),
    ({"expires_in": 5}, "expires_in"),
    ({"provider": "nosuch"}, "provider"),
])
async def test_create_order_rejects(gateway: Harness, change: dict[str, Any], param: str) -> None:
    r = await gateway.api.post("/v1/orders", json={**GOOD, **change}, headers=gateway.merchant())
    _assert_error(r, 400, param=param)
    await _assert_nothing_written(gateway)


@pytest.mark.parametrize("missing", ["merchant_reference", "amount", "currency", "description",
                                     "channel"])
async def test_missing_fields(sqlite_gateway: Harness, missing: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != missing}
    r = await sqlite_gateway.api.post("/v1/orders", json=body, headers=sqlite_gateway.merchant())
    _assert_error(r, 400, "missing_field", missing)
    await _assert_nothing_written(sqlite_gateway)


async def test_an_order_in_a_currency_the_latipay_wallet_cannot_charge(
    sqlite_gateway: Harness,
) -> None:
    """Latipay charges in the wallet's currency (NZD in the sandbox) whatever the order
    says, so an AUD order would only be caught after the shopper paid: refuse it now."""
    gw = sqlite_gateway
    r = await gw.api.post("/v1/orders", json={**GOOD, "currency": "AUD", "provider": "latipay"},
                          headers=gw.merchant())
    _assert_error(r, 400, "currency_not_supported", "currency")
    assert "NZD" in r.json()["error"]["message"]
    await _assert_nothing_written(gw)


async def test_unknown_field_and_non_json(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    r = await gw.api.post("/v1/orders", json={**GOOD, "openid": "x"}, headers=gw.merchant())
    _assert_error(r, 400, param="openid")
    r = await gw.api.post("/v1/orders", content=b"{not json", headers=gw.merchant())
    _assert_error(r, 400)
    await _assert_nothing_written(gw)


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic abc", "Bearer "])
async def test_merchant_api_needs_the_key(gateway: Harness, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = await gateway.api.post("/v1/orders", json=GOOD,
                               headers={**headers, "Idempotency-Key": "wrong-key-1"})
    _assert_error(r, 401, "unauthorized")
    r = await gateway.api.get("/v1/orders", headers=headers)
    _assert_error(r, 401)
    await _assert_nothing_written(gateway)


async def test_client_token_is_checked(gateway: Harness) -> None:
    order = await gateway.create_order()
    code = await gateway.login_code()
    before = await gateway.row_counts()
    r = await gateway.api.post(f"/v1/client/orders/{order['id']}/pay",
                               json={"client_token": "ct_wrong", "login_code": code})
    _assert_error(r, 401, "invalid_client_token")
    r = await gateway.api.get(f"/v1/client/orders/{order['id']}",
                              params={"client_token": "ct_wrong"})
    _assert_error(r, 401)
    # Same answer for an order that does not exist: nothing to probe.
    r = await gateway.api.get("/v1/client/orders/ord_nope", params={"client_token": "x"})
    _assert_error(r, 401)
    assert await gateway.row_counts() == before
    after = await gateway.get_order(order["id"])
    assert after["status"] == "created" and after["payments"] == []
    assert gateway.world.latipay.orders == {}  # nothing reached the provider either


async def test_login_code_is_single_use(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    first = await gw.create_order()
    second = await gw.create_order()
    code = await gw.login_code()
    r = await gw.api.post(f"/v1/client/orders/{first['id']}/pay",
                          json={"client_token": first["client_token"], "login_code": code})
    assert r.status_code == 200
    r = await gw.api.post(f"/v1/client/orders/{second['id']}/pay",
                          json={"client_token": second["client_token"], "login_code": code})
    _assert_error(r, 400, "invalid_login_code", "login_code")
    assert (await gw.get_order(second["id"]))["status"] == "created"


async def test_wechat_pay_needs_a_login_code(sqlite_gateway: Harness) -> None:
    order = await sqlite_gateway.create_order()
    r = await sqlite_gateway.api.post(f"/v1/client/orders/{order['id']}/pay",
                                      json={"client_token": order["client_token"]})
    _assert_error(r, 400, "missing_login_code", "login_code")


async def test_blocked_user_login(sqlite_gateway: Harness) -> None:
    order = await sqlite_gateway.create_order()
    code = await sqlite_gateway.login_code("blocked-bob")
    r = await sqlite_gateway.api.post(f"/v1/client/orders/{order['id']}/pay",
                                      json={"client_token": order["client_token"],
                                            "login_code": code})
    _assert_error(r, 403, "login_blocked")


async def test_not_found_and_refund_on_unpaid(gateway: Harness) -> None:
    r = await gateway.api.get("/v1/orders/ord_missing", headers=gateway.merchant())
    _assert_error(r, 404, "not_found")
    order = await gateway.create_order()
    r = await gateway.api.post(f"/v1/orders/{order['id']}/refunds", json={},
                               headers=gateway.merchant())
    _assert_error(r, 409, "order_not_refundable")
    r = await gateway.api.get("/v1/refunds/rfd_missing", headers=gateway.merchant())
    _assert_error(r, 404)


async def test_refund_amount_validated(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order(amount="10.00")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    # A zero amount is outside the schema (400); more than is left is refused (422).
    for amount, status in (("10.001", 400), ("0.00", 400), ("10.01", 422), ("x", 400)):
        r = await gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": amount},
                              headers=gw.merchant())
        _assert_error(r, status)
    final = await gw.get_order(order["id"])
    assert final["status"] == "paid" and final["refunds"] == []


async def test_openapi_is_served(sqlite_gateway: Harness) -> None:
    r = await sqlite_gateway.api.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/v1/orders" in paths and "/v1/client/orders/{order_id}/pay" in paths
    assert "post" in paths["/v1/notify/{provider}"]  # a plain route, documented by hand


async def test_unknown_provider_callback_is_a_400_in_the_error_shape(
    sqlite_gateway: Harness,
) -> None:
    r = await sqlite_gateway.api.post("/v1/notify/nosuchpsp", content=b"x=1")
    _assert_error(r, 400, "provider_not_configured")


async def test_refund_amount_as_number_is_a_400(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order(amount="10.00")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    r = await gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": 5},
                          headers=gw.merchant())
    _assert_error(r, 400, param="amount")
    r = await gw.api.post(f"/v1/orders/{order['id']}/refunds", headers=gw.merchant())
    assert r.status_code == 201 and r.json()["amount"] == "10.00"  # no body: the rest


async def test_database_unavailable_is_a_retryable_503(sqlite_gateway: Harness,
                                                       monkeypatch: Any) -> None:
    from sqlalchemy.exc import OperationalError

    from minigate.store import repo

    gw = sqlite_gateway
    order = await gw.create_order()

    async def database_down(*_: object, **__: object) -> None:
        raise OperationalError("SELECT …", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(repo, "get_order", database_down)
    r = await gw.api.get(f"/v1/orders/{order['id']}", headers=gw.merchant())
    _assert_error(r, 503, "database_unavailable")
    assert r.headers["retry-after"] == "1"
    assert "server closed" not in r.text  # driver details stay in the log


async def test_the_client_never_chooses_the_openid(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order()
    before = await gw.row_counts()
    r = await gw.api.post(f"/v1/client/orders/{order['id']}/pay", json={
        "client_token": order["client_token"], "login_code": await gw.login_code("mallory"),
        "openid": "oSomeoneElsesOpenid"})
    _assert_error(r, 400, param="openid")
    assert await gw.row_counts() == before and gw.world.latipay.orders == {}
    await gw.pay(order, user="alice")
    (sent,) = gw.world.latipay.orders.values()
    assert sent.params["open_id"] == gw.world.login.openid_for(cred.MINI_APP_ID, "alice")
