"""Merchant API (server to server, ``Authorization: Bearer <api key>``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from minigate.api.deps import Ctx, IdempotencyKey, MerchantKey
from minigate.api.schemas import CreateOrder, CreateRefund
from minigate.domain.money import Money
from minigate.errors import NotFound
from minigate.service import orders, refunds
from minigate.service.idempotency import Attempt, request_fingerprint, run_idempotent

router = APIRouter(prefix="/v1", tags=["merchant"])


@router.post("/orders", status_code=201)
async def create_order(
    body: CreateOrder, ctx: Ctx, api_key: MerchantKey, key: IdempotencyKey
) -> JSONResponse:
    """Create an order; the mini program then pays it with its ``client_token``."""

    async def run(attempt: Attempt) -> tuple[int, dict[str, Any]]:
        cmd = orders.NewOrder(
            merchant_reference=body.merchant_reference,
            amount=Money.parse(body.amount, body.currency), description=body.description,
            channel=body.channel, provider=body.provider, expires_in=body.expires_in,
            metadata=body.metadata,
        )
        return 201, await orders.create_order(ctx, cmd, attempt)

    status, payload = await run_idempotent(
        ctx, api_key, key, request_fingerprint("POST /v1/orders", body.model_dump()), run)
    return JSONResponse(payload, status)


@router.get("/orders/{order_id}")
async def get_order(order_id: str, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    """The order with its payment, refunds and timeline."""
    return await orders.get_order(ctx, order_id)


@router.get("/orders")
async def list_orders(
    ctx: Ctx, _: MerchantKey,
    status: str | None = None, provider: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20, cursor: str | None = None,
) -> dict[str, Any]:
    return await orders.list_orders(ctx, status=status, provider=provider, limit=limit,
                                    cursor=cursor)


@router.post("/orders/{order_id}/close")
async def close_order(order_id: str, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    """Close an unpaid order (at the provider too, where it has a close call)."""
    return await orders.close_order(ctx, order_id)


@router.post("/orders/{order_id}/refunds")
async def create_refund(
    order_id: str, ctx: Ctx, api_key: MerchantKey, key: IdempotencyKey,
    payload: Annotated[CreateRefund | None, Body()] = None,
) -> JSONResponse:
    """Refund all or part of a paid order (all that is left when ``amount`` is absent)."""
    body = payload or CreateRefund()

    async def run(attempt: Attempt) -> tuple[int, dict[str, Any]]:
        return 201, await refunds.create_refund(ctx, order_id, body.amount, body.reason,
                                                attempt)

    fingerprint = request_fingerprint(f"POST /v1/orders/{order_id}/refunds", body.model_dump())
    status, response = await run_idempotent(ctx, api_key, key, fingerprint, run)
    return JSONResponse(response, status)


@router.get("/refunds/{refund_id}")
async def get_refund(refund_id: str, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    return await refunds.get_refund(ctx, refund_id)


@router.get("/events")
async def list_events(
    ctx: Ctx, _: MerchantKey, after: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """Merchant events (``order.paid``, ``refund.succeeded``…) after a sequence number."""
    return await orders.list_events(ctx, after=after, limit=limit)


@router.post("/events/{event_id}/redeliver")
async def redeliver_event(event_id: str, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    """Queue a webhook delivery again (e.g. a parked one after the endpoint is fixed)."""
    from minigate.jobs.delivery import redeliver

    event = await redeliver(ctx, event_id)
    if event is None:
        raise NotFound(f"no event {event_id}", param="id")
    return event
