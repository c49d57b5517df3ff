"""The OpenAPI says what the API does, and the API refuses what the OpenAPI excludes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from minigate.api.schemas import CURRENCIES, ERROR_CODES
from minigate.domain.money import CURRENCY_EXPONENTS
from tests.support import Harness

GOOD = {"merchant_reference": "C-1", "amount": "12.30", "currency": "NZD",
        "description": "Tea", "channel": "wechat"}


async def _openapi(gw: Harness) -> dict[str, Any]:
    r = await gw.api.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items()
            for method, op in item.items() if not path.startswith("/sandbox/")]


async def test_every_answer_is_described(sqlite_gateway: Harness) -> None:
    doc = await _openapi(sqlite_gateway)
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # minigate never answers FastAPI's 422
    for path, method, op in _operations(doc):
        if path == "/healthz":
            continue
        responses = op["responses"]
        assert any(code.startswith("2") for code in responses), (path, method)
        for code, response in responses.items():
            if code == "204":
                continue
            assert response.get("content"), (path, method, code)
            if path.startswith("/v1/") and code >= "400" and path != "/v1/notify/{provider}":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (path, method, code)
        if path.startswith("/v1/orders") or path.startswith("/v1/events") \
                or path.startswith("/v1/refunds"):
            assert op["security"] == [{"bearer": []}], path
            assert "401" in responses and "503" in responses, (path, method)
            assert "Retry-After" in responses["503"]["headers"]
        if path.startswith("/v1/client/"):
            assert op["security"] == [], path
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "The merchant API key (`MINIGATE_API_KEY`)"}
    detail = schemas["ErrorDetail"]["properties"]
    assert detail["code"]["enum"] == list(ERROR_CODES)
    for code in ("duplicate_merchant_reference", "database_unavailable", "body_too_large",
                 "idempotency_key_reused", "currency_not_supported"):
        assert code in detail["code"]["enum"]


async def test_enums_links_idempotency_key_and_examples(sqlite_gateway: Harness) -> None:
    doc = await _openapi(sqlite_gateway)
    schemas = doc["components"]["schemas"]
    assert set(schemas["OrderStatus"]["enum"]) >= {"created", "paid", "refunded", "closed"}
    assert schemas["Channel"]["enum"] == ["wechat", "alipay"]
    assert "wechatpay-v2" in schemas["ProviderId"]["enum"]
    assert schemas["Order"]["properties"]["currency"]["enum"] == list(CURRENCIES)
    create = doc["paths"]["/v1/orders"]["post"]
    key = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header"
    limits = key["schema"]["anyOf"][0]
    assert (limits["minLength"], limits["maxLength"]) == (1, 255)
    links = create["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "getOrder", "payOrder", "getOrderStatus", "closeOrder", "createRefund"}
    assert links["PayOrder"]["requestBody"] == {"client_token": "$response.body#/client_token"}
    refund_links = doc["paths"]["/v1/orders/{order_id}/refunds"]["post"]["responses"]["201"]
    assert refund_links["links"]["GetRefund"]["operationId"] == "getRefund"
    assert schemas["CreateOrder"]["examples"] and schemas["Order"]["examples"]
    xml = doc["paths"]["/sandbox/wechatpay/pay/unifiedorder"]["post"]
    assert list(xml["responses"]["200"]["content"]) == ["text/xml"]
    assert list(xml["requestBody"]["content"]) == ["text/xml"]


async def test_create_order_schema_is_what_this_deployment_accepts(
    sqlite_gateway: Harness,
) -> None:
    """Every branch of CreateOrder's anyOf is accepted; a currency outside a provider's
    branch is refused with currency_not_supported, for every provider."""
    gw = sqlite_gateway
    doc = await _openapi(gw)
    branches = doc["components"]["schemas"]["CreateOrder"]["anyOf"]
    providers = {b["properties"]["provider"].get("const") for b in branches}
    assert providers == {"latipay", "qfpay", "cbtis", "wechatpay", "wechatpay-v2", None}
    jpy = next(b for b in branches if "JPY" in b["properties"]["currency"]["enum"])
    assert re.fullmatch(jpy["properties"]["amount"]["pattern"], "1230")
    assert not re.fullmatch(jpy["properties"]["amount"]["pattern"], "12.30")
    n = 0
    for branch in branches:
        props = branch["properties"]
        provider = props["provider"].get("const")
        allowed = set(props["currency"]["enum"])
        for currency in sorted(allowed)[:2]:
            amount = "1230" if CURRENCY_EXPONENTS[currency] == 0 else "12.30"
            n += 1
            body = {**GOOD, "merchant_reference": f"C-{n}", "currency": currency,
                    "channel": props["channel"]["const"], "amount": amount}
            if provider:
                body["provider"] = provider
            r = await gw.api.post("/v1/orders", json=body, headers=gw.merchant())
            assert r.status_code == 201, (body, r.text)
        if provider:
            outside = sorted(set(CURRENCY_EXPONENTS) - {
                c for b in branches if b["properties"]["provider"].get("const") == provider
                for c in b["properties"]["currency"]["enum"]})[0]
            body = {**GOOD, "merchant_reference": "C-x", "provider": provider,
                    "currency": outside, "channel": props["channel"]["const"]}
            r = await gw.api.post("/v1/orders", json=body, headers=gw.merchant())
            assert r.status_code == 400, (provider, outside, r.text)
            assert r.json()["error"]["code"] == "currency_not_supported"


@pytest.mark.parametrize(("change", "code", "param"), [
    ({"amount": "0"}, "invalid_amount", "amount"),
    ({"amount": "0.00"}, "invalid_amount", "amount"),
    ({"amount": "1230", "currency": "JPY", "provider": "qfpay"}, None, None),
    ({"expires_in": 59}, "invalid_field", "expires_in"),
    ({"expires_in": "600"}, "invalid_field", "expires_in"),
    ({"expires_in": True}, "invalid_field", "expires_in"),
    ({"metadata": {"k": "x" * 201}}, "invalid_field", "metadata"),
    ({"metadata": {"a": {"b": 1}}}, "invalid_field", "metadata"),
    ({"metadata": {"a": [1]}}, "invalid_field", "metadata"),
    ({"metadata": {f"k{i}": i for i in range(51)}}, "invalid_field", "metadata"),
    ({"metadata": {"k" * 41: 1}}, "invalid_field", "metadata"),
    ({"metadata": {f"k{i}": "x" * 200 for i in range(48)} | {"n": None, "t": True}}, None,
     None),
    ({"metadata": {"n": 1.5, "i": 10**30, "s": "", "b": False}}, None, None),
])
async def test_create_order_bounds(sqlite_gateway: Harness, change: dict[str, Any],
                                   code: str | None, param: str | None) -> None:
    gw = sqlite_gateway
    r = await gw.api.post("/v1/orders", json={**GOOD, **change}, headers=gw.merchant())
    if code is None:
        assert r.status_code == 201, r.text
        return
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param)
    assert (await gw.row_counts())["orders"] == 0


@pytest.mark.parametrize(("path", "param"), [
    ("/v1/events?after=9223372036854775808", "after"),
    ("/v1/events?after=99999999999999999999999", "after"),
    ("/v1/events?after=-1", "after"),
    ("/v1/events?limit=0", "limit"),
    ("/v1/orders?limit=101", "limit"),
    ("/v1/orders?cursor=" + "1" * 17 + ".ord_x", "cursor"),
    ("/v1/orders?status=nope", "status"),
    ("/v1/orders?provider=nope", "provider"),
    ("/v1/orders/" + "o" * 65, "order_id"),
    ("/v1/orders/ord%20x", "order_id"),
    ("/v1/refunds/" + "r" * 65, "refund_id"),
])
async def test_parameters_are_bounded(sqlite_gateway: Harness, path: str, param: str) -> None:
    r = await sqlite_gateway.api.get(path, headers=sqlite_gateway.merchant())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


async def test_a_cursor_of_the_documented_form_is_a_position(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    await gw.create_order()
    r = await gw.api.get("/v1/orders", params={"cursor": "9999999999999999.zzz"},
                         headers=gw.merchant())
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    r = await gw.api.get("/v1/orders", params={"cursor": "0.a"}, headers=gw.merchant())
    assert r.status_code == 200 and r.json()["data"] == []


async def test_an_idempotency_key_replay_with_another_body_keeps_its_422(
    sqlite_gateway: Harness,
) -> None:
    gw = sqlite_gateway
    headers = {**gw.merchant(), "Idempotency-Key": "k-contract-1"}
    first = await gw.api.post("/v1/orders", json=GOOD, headers=headers)
    assert first.status_code == 201
    for _ in range(2):
        r = await gw.api.post("/v1/orders", json={**GOOD, "amount": "9.99"}, headers=headers)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "idempotency_key_reused"
    same = await gw.api.post("/v1/orders", json=GOOD, headers=headers)
    assert same.status_code == 201 and same.json()["id"] == first.json()["id"]
    bad = await gw.api.post("/v1/orders", json=GOOD,
                            headers={**gw.merchant(), "Idempotency-Key": "a b"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Idempotency-Key"


async def test_405_names_every_method_of_the_path(sqlite_gateway: Harness) -> None:
    r = await sqlite_gateway.api.delete("/v1/orders", headers=sqlite_gateway.merchant())
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}


async def test_a_body_that_is_not_utf8_is_a_400_in_the_error_shape(
    sqlite_gateway: Harness,
) -> None:
    r = await sqlite_gateway.api.post("/v1/orders", content=b"\xff\xfe{",
                                      headers={**sqlite_gateway.merchant(),
                                               "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] in ERROR_CODES
