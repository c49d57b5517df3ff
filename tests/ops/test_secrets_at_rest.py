"""The order's client_token is not kept in clear in idempotency_keys.response_body, and a
replay still hands it back to the merchant."""

from __future__ import annotations

from sqlalchemy import select

from minigate.store.models import IdempotencyRecord
from tests.support import Harness


async def test_stored_answer_does_not_hold_the_client_token(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    body = {"merchant_reference": "at-rest-1", "amount": "3.00", "currency": "NZD",
            "description": "Scone", "channel": "wechat"}
    headers = {**gw.merchant(), "Idempotency-Key": "at-rest-1"}
    first = await gw.api.post("/v1/orders", json=body, headers=headers)
    replay = await gw.api.post("/v1/orders", json=body, headers=headers)
    token = first.json()["client_token"]
    assert replay.json()["client_token"] == token
    async with gw.ctx.sessions() as session:
        stored = (await session.execute(select(IdempotencyRecord.response_body))).scalars().all()
    assert stored and all(token not in (row or "") for row in stored)
    assert all(first.json()["id"] not in (row or "") for row in stored)  # sealed whole
