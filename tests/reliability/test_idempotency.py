"""Idempotency-Key on POST /v1/orders and refunds."""

from __future__ import annotations

from datetime import timedelta

from minigate.service.idempotency import LOCK, run_idempotent, scope_for
from minigate.store.models import IdempotencyRecord
from tests.support import API_KEY, Harness

BODY = {"merchant_reference": "M-idem", "amount": "12.30", "currency": "NZD",
        "description": "Tea", "channel": "wechat"}


async def _post(gw: Harness, key: str, body: dict) -> tuple[int, dict]:
    r = await gw.api.post("/v1/orders", json=body,
                          headers={**gw.merchant(), "Idempotency-Key": key})
    return r.status_code, r.json()


async def _order_count(gw: Harness) -> int:
    r = await gw.api.get("/v1/orders", headers=gw.merchant())
    return len(r.json()["data"])


async def test_same_key_same_body_replays_first_response(gateway: Harness) -> None:
    first = await _post(gateway, "k1", BODY)
    second = await _post(gateway, "k1", BODY)
    assert first[0] == second[0] == 201
    assert first[1] == second[1]  # including the client_token
    assert await _order_count(gateway) == 1


async def test_same_key_other_body_is_422(gateway: Harness) -> None:
    await _post(gateway, "k2", BODY)
    status, body = await _post(gateway, "k2", {**BODY, "amount": "99.00"})
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    assert await _order_count(gateway) == 1


async def test_errors_are_replayed_too(sqlite_gateway: Harness) -> None:
    bad = {**BODY, "provider": "nosuch"}
    first = await _post(sqlite_gateway, "k3", bad)
    second = await _post(sqlite_gateway, "k3", bad)
    assert first == second and first[0] == 400


async def test_key_in_flight_is_409_and_a_dead_lock_is_taken_over(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    now = gw.ctx.clock.now()
    from minigate.service.idempotency import request_fingerprint

    async with gw.ctx.sessions() as session, session.begin():
        session.add(IdempotencyRecord(
            scope=scope_for(API_KEY), key="k4", state="in_flight",
            request_hash=request_fingerprint("POST /v1/orders", _model_dump(BODY)),
            locked_until=now + LOCK, created_at=now))
    status, body = await _post(gw, "k4", BODY)
    assert status == 409 and body["error"]["code"] == "idempotency_key_in_use"
    async with gw.ctx.sessions() as session, session.begin():
        record = await session.get(IdempotencyRecord, (scope_for(API_KEY), "k4"))
        assert record is not None
        record.locked_until = now - timedelta(seconds=1)  # its process died
    status, _ = await _post(gw, "k4", BODY)
    assert status == 201


def _model_dump(body: dict) -> dict:
    from minigate.api.schemas import CreateOrder

    return CreateOrder.model_validate(body).model_dump()


async def test_refund_with_same_key_refunds_once(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order(amount="10.00")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    headers = {**gw.merchant(), "Idempotency-Key": "refund-1"}
    url = f"/v1/orders/{order['id']}/refunds"
    a = await gw.api.post(url, json={"amount": "4.00"}, headers=headers)
    b = await gw.api.post(url, json={"amount": "4.00"}, headers=headers)
    assert a.status_code == b.status_code == 201 and a.json() == b.json()
    assert (await gw.get_order(order["id"]))["amount_refunded"] == "4.00"


async def test_keys_are_scoped_per_api_key(sqlite_gateway: Harness) -> None:
    calls: list[str] = []

    async def op(tag: str) -> tuple[int, dict]:
        calls.append(tag)
        return 201, {"tag": tag}

    ctx = sqlite_gateway.ctx
    r1 = await run_idempotent(ctx, "key-a", "same", "fp", lambda _: op("a"))
    r2 = await run_idempotent(ctx, "key-b", "same", "fp", lambda _: op("b"))
    r3 = await run_idempotent(ctx, "key-a", "same", "fp", lambda _: op("a2"))
    assert calls == ["a", "b"] and r1 == r3 == (201, {"tag": "a"}) and r2[1] == {"tag": "b"}
