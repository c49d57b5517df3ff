"""The job runner's housekeeping: expiry leases, Idempotency-Key retention, and a refund
whose sending fails after its amount was reserved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from minigate.errors import ProviderUnavailable
from minigate.store.models import IdempotencyRecord
from tests.reliability.conftest import Rig, make_rig


@pytest.fixture
async def slow_rig(database_url: str) -> AsyncIterator[Rig]:
    """A rig whose simulated WeChat Pay keeps its real 5-minute close rule."""
    r = await make_rig(database_url, sandbox={"time_scale": 1.0})
    try:
        yield r
    finally:
        await r.gw.api.aclose()
        await r.gw.runtime.stop()


async def _expired(rig: Rig, **order: Any) -> dict[str, Any]:
    created = await rig.gw.create_order(expires_in=60, **order)
    await rig.gw.pay(created)
    rig.clock.advance(61)
    return created


def _closes(rig: Rig) -> int:
    return sum(1 for p in rig.faults.paths if p.endswith("/close"))


async def test_expiry_waits_for_the_providers_minimum_age_then_closes(slow_rig: Rig) -> None:
    rig = slow_rig
    order = await _expired(rig, provider="wechatpay", currency="CNY", amount="9.90")
    looked_at: list[str] = []
    expire = rig.runner._expire

    async def counted(order_id: str) -> None:
        looked_at.append(order_id)
        await expire(order_id)

    rig.runner._expire = counted  # type: ignore[method-assign]
    await rig.run_jobs()  # 61 s old: WeChat refuses a close before 300 s
    await rig.run_jobs(120)  # still too early: the order waits, it is not looked at again
    assert looked_at == [order["id"]]
    assert (await rig.gw.get_order(order["id"]))["status"] == "pending"
    assert _closes(rig) == 0
    await rig.run_jobs(120)  # 301 s: the last query, the close at WeChat, then here
    assert (await rig.gw.get_order(order["id"]))["status"] == "closed"
    assert _closes(rig) == 1
    (sim,) = rig.gw.world.wechatpay.orders.values()
    assert sim.prepay.status == "CLOSED"


async def test_a_failed_close_is_tried_again_after_the_lease_not_every_pass(rig: Rig) -> None:
    order = await _expired(rig)
    client = rig.gw.ctx.providers["latipay"]
    attempts: list[str] = []

    async def provider_down(ref: Any) -> None:
        attempts.append(ref.provider_order_no)
        raise ProviderUnavailable("connection refused", provider="latipay")

    client.close_payment = provider_down
    try:
        await rig.run_jobs()
        await rig.run_jobs(1)
        await rig.run_jobs(30)
        assert len(attempts) == 1  # leased: not hammered once a second
        assert (await rig.gw.get_order(order["id"]))["status"] == "pending"
        await rig.run_jobs(rig.gw.ctx.settings.job_lease_seconds)
        assert len(attempts) == 2
    finally:
        del client.close_payment
    await rig.run_jobs(rig.gw.ctx.settings.job_lease_seconds)
    assert (await rig.gw.get_order(order["id"]))["status"] == "closed"
    assert len(attempts) == 2


async def _idempotency_rows(rig: Rig) -> int:
    async with rig.gw.ctx.sessions() as session:
        return int((await session.execute(
            select(func.count()).select_from(IdempotencyRecord))).scalar_one())


async def test_idempotency_keys_are_forgotten_after_their_retention(rig: Rig) -> None:
    body = {"merchant_reference": "keep-1", "amount": "1.00", "currency": "NZD",
            "description": "Tea", "channel": "wechat"}
    headers = rig.gw.merchant() | {"Idempotency-Key": "k-retention"}
    first = await rig.gw.api.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == 201
    await rig.run_jobs(23 * 3600)  # within 24 h: kept and replayed
    assert await _idempotency_rows(rig) == 1
    again = await rig.gw.api.post("/v1/orders", json=body, headers=headers)
    assert again.json()["id"] == first.json()["id"]
    await rig.run_jobs(2 * 3600)
    assert await _idempotency_rows(rig) == 0


async def test_a_refund_whose_sending_crashes_is_answered_pending_and_sent_once(
    rig: Rig,
) -> None:
    order = await rig.gw.create_order(amount="20.00")
    await rig.gw.shopper_pays(await rig.gw.pay(order))
    await rig.gw.wait_status(order["id"], "paid")
    client = rig.gw.ctx.providers["latipay"]

    async def bug(_: Any) -> None:
        raise RuntimeError("a bug after the reservation was committed")

    headers = rig.gw.merchant() | {"Idempotency-Key": "refund-crash"}
    client.refund = bug
    try:
        r = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds",
                                  json={"amount": "5.00"}, headers=headers)
    finally:
        del client.refund
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    retry = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds",
                                  json={"amount": "5.00"}, headers=headers)
    assert retry.json()["id"] == r.json()["id"]  # replayed, not a second refund
    await rig.run_jobs(60)  # the reconciler sends it, under its one number
    detail = await rig.gw.get_order(order["id"])
    assert [f["status"] for f in detail["refunds"]] == ["succeeded"]
    assert detail["amount_refunded"] == "5.00"
    (sim,) = rig.gw.world.latipay.orders.values()
    assert sim.refunded_minor == 500
