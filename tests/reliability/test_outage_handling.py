"""In-process: database failures become 503 / failure acks / a quiet runner; Idempotency-Keys
resume from their recovery point instead of running twice."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg.exceptions as apg
import pytest
from sqlalchemy import func, select

from minigate.jobs.runner import Outage
from minigate.service import notifications, refunds
from minigate.store import repo
from minigate.store.models import IdempotencyRecord, Refund
from tests.support import Harness


async def test_connect_refused_is_503_with_retry_after(sqlite_gateway: Harness,
                                                       monkeypatch: Any) -> None:
    gw = sqlite_gateway
    order = await gw.create_order()

    async def refused(*_: object, **__: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(repo, "get_order", refused)
    r = await gw.api.get(f"/v1/orders/{order['id']}", headers=gw.merchant())
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    body = r.json()["error"]
    assert body["code"] == "database_unavailable" and "may not have completed" in body["message"]


async def test_a_bug_is_a_500_logged_once(sqlite_gateway: Harness, monkeypatch: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    gw = sqlite_gateway
    order = await gw.create_order()

    async def bug(*_: object, **__: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(repo, "get_order", bug)
    with caplog.at_level(logging.ERROR):
        r = await gw.api.get(f"/v1/orders/{order['id']}", headers=gw.merchant())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert len([rec for rec in caplog.records if rec.levelno >= logging.ERROR]) == 1


async def test_notification_during_outage_gets_the_failure_ack(sqlite_gateway: Harness,
                                                               monkeypatch: Any) -> None:
    from tests.e2e.test_notifications import _form, _notify, _pending_order

    gw = sqlite_gateway
    order, reference = await _pending_order(gw)

    async def starting(*_: object, **__: object) -> str:
        raise apg.CannotConnectNowError("the database system is starting up")

    monkeypatch.setattr(notifications, "_record_and_apply", starting)
    r = await _notify(gw, _form(reference, "12.30"))
    assert (r.status_code, r.text) == (400, "rejected")  # Latipay's "send it again"
    monkeypatch.undo()
    r = await _notify(gw, _form(reference, "12.30"))
    assert r.text == "sent" and (await gw.get_order(order["id"]))["status"] == "paid"


async def test_refund_interrupted_by_outage_resumes_with_its_key(gateway: Harness,
                                                                 monkeypatch: Any) -> None:
    gw = gateway
    order = await gw.create_order(amount="10.00")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    real_submit = refunds.submit_refund

    async def outage(*_: object, **__: object) -> dict[str, Any]:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(refunds, "submit_refund", outage)
    headers = {**gw.merchant(), "Idempotency-Key": "r-outage"}
    url = f"/v1/orders/{order['id']}/refunds"
    first = await gw.api.post(url, json={"amount": "4.00"}, headers=headers)
    assert first.status_code == 503
    async with gw.ctx.sessions() as session:
        record = (await session.execute(select(IdempotencyRecord))).scalar_one()
        assert record.recovery_point == "refund_reserved" and record.resource_id
        assert record.state == "in_flight"
    monkeypatch.setattr(refunds, "submit_refund", real_submit)
    second = await gw.api.post(url, json={"amount": "4.00"}, headers=headers)
    assert second.status_code == 201 and second.json()["id"] == record.resource_id
    third = await gw.api.post(url, json={"amount": "4.00"}, headers=headers)
    assert third.json() == second.json()
    async with gw.ctx.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Refund))).scalar() == 1
    (sim_order,) = gw.world.latipay.orders.values()
    assert sim_order.refunded_minor == 400 and len(sim_order.refund_refs) == 1


async def test_stored_answers_are_encrypted(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.api.post("/v1/orders", headers={**gw.merchant(), "Idempotency-Key": "enc"},
                              json={"merchant_reference": "enc-1", "amount": "1.00",
                                    "currency": "NZD", "description": "x", "channel": "wechat"})
    token = order.json()["client_token"]
    async with gw.ctx.sessions() as session:
        record = (await session.execute(select(IdempotencyRecord))).scalar_one()
    assert record.state == "done" and record.response_body is not None
    assert token not in record.response_body and order.json()["id"] not in record.response_body


def test_runner_outage_backs_off_and_logs_start_and_end(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(base=1.0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    refused = ConnectionRefusedError(111, "refused")
    with caplog.at_level(logging.WARNING, logger="minigate.jobs"):
        waits = []
        for n in range(8):
            assert outage.failed(refused, now + timedelta(seconds=n))
            waits.append(outage.backoff())
        outage.passed(now + timedelta(seconds=100))
        outage.passed(now + timedelta(seconds=101))
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "backing off" in messages[0] and "after 8 failed job passes (100 s)" in messages[1]
    assert not outage.failed(ValueError("bug"), now) and outage.backoff() == 1
