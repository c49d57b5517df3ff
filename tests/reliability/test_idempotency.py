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


# --- order creation stores its key in its own statement (one_statement) ----------------


async def _key_record(gw: Harness, key: str) -> IdempotencyRecord | None:
    async with gw.ctx.sessions() as session:
        return await session.get(IdempotencyRecord, (scope_for(API_KEY), key))


async def test_a_keyed_create_writes_key_order_and_event_in_one_statement(
        gateway: Harness) -> None:
    gw = gateway
    before = gw.ctx.hot.statements
    status, body = await _post(gw, "one-1", {**BODY, "merchant_reference": "M-one-1"})
    assert status == 201
    assert gw.ctx.hot.statements - before == 1  # no separate claim of the key
    stored = await _key_record(gw, "one-1")
    assert stored is not None and stored.state == "done"
    assert stored.recovery_point == "finished" and stored.response_status == 201
    assert await _post(gw, "one-1", {**BODY, "merchant_reference": "M-one-1"}) == (201, body)


async def test_concurrent_creates_with_one_key_make_one_order(gateway: Harness) -> None:
    import asyncio

    gw = gateway
    body = {**BODY, "merchant_reference": "M-race"}
    answers = await asyncio.gather(*(_post(gw, "race-1", body) for _ in range(8)))
    created = [a for s, a in answers if s == 201]
    assert created and all(a == created[0] for a in created)
    assert all(s == 201 or (s == 409 and a["error"]["code"] == "idempotency_key_in_use")
               for s, a in answers)
    assert [o["merchant_reference"] for o in
            (await gw.api.get("/v1/orders", headers=gw.merchant())).json()["data"]] == ["M-race"]


async def test_a_refused_create_keeps_the_classic_key_rules(gateway: Harness) -> None:
    """A duplicate merchant_reference under a new key: the one statement wrote nothing, so
    the request took the claim path: a 409 that is not stored (the key is released and
    runs again), and the key stays bound to its body."""
    gw = gateway
    body = {**BODY, "merchant_reference": "M-dup"}
    assert (await _post(gw, "dup-a", body))[0] == 201
    for _ in range(2):
        status, answer = await _post(gw, "dup-b", body)
        assert status == 409 and answer["error"]["code"] == "duplicate_merchant_reference"
    stored = await _key_record(gw, "dup-b")
    assert stored is not None and stored.state == "in_flight" and stored.response_body is None
    status, answer = await _post(gw, "dup-b", {**body, "merchant_reference": "M-dup-2"})
    assert status == 422 and answer["error"]["code"] == "idempotency_key_reused"
    assert await _order_count(gw) == 1
