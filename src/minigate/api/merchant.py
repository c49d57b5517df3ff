"""Merchant API (server to server, ``Authorization: Bearer <api key>``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from minigate.api import lane
from minigate.api.deps import (
    IDEMPOTENCY_KEY_PATTERN,
    Ctx,
    IdempotencyKey,
    MerchantKey,
    bearer,
    merchant_auth,
)
from minigate.api.openapi import LINKS, errors
from minigate.api.schemas import (
    ID_PATTERN,
    CreatedOrder,
    CreateOrder,
    CreateRefund,
    Event,
    EventList,
    Order,
    OrderList,
    OrderStatus,
    ProviderId,
    Refund,
)
from minigate.domain.money import Money
from minigate.errors import AuthenticationError, InvalidRequest, NotFound
from minigate.service import orders, refunds
from minigate.service.context import ServiceContext
from minigate.service.idempotency import Attempt, request_fingerprint, run_idempotent
from minigate.service.views import json_bytes

router = APIRouter(prefix="/v1", tags=["merchant"])

OrderId = Annotated[str, Path(pattern=ID_PATTERN, description="`id` of the order",
                              examples=["ord_5Tg1"])]
RefundId = Annotated[str, Path(pattern=ID_PATTERN, examples=["re_8Xq2"])]
EventId = Annotated[str, Path(pattern=ID_PATTERN, examples=["evt_3Lm0"])]
#: Largest ``sequence`` an event can have (a BIGINT): a larger ``after`` is refused, not a 500.
MAX_SEQUENCE = 2**63 - 1


class JSONAnswer(JSONResponse):
    """The keyed answers (orders, refunds), serialised with orjson: a replay is the stored
    answer, not a model, so FastAPI's own serialiser does not apply."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


@router.post("/orders", status_code=201, operation_id="createOrder",
             response_model=CreatedOrder,
             responses=errors(400, 401, 408, 409, 413, 422, 503,
                              links={201: LINKS["order"]}))
async def create_order(
    body: CreateOrder, ctx: Ctx, api_key: MerchantKey, key: IdempotencyKey
) -> JSONResponse:
    """Create an order; the mini program then pays it with its ``client_token``.

    The provider is called at pay time, not now. With an ``Idempotency-Key``, a retry gets
    the first answer (the same ``client_token``) and creates nothing."""
    return await _create_order(ctx, body, api_key, key)


async def _create_order(ctx: ServiceContext, body: CreateOrder, api_key: str,
                        key: str | None) -> JSONResponse:
    """``POST /v1/orders`` once its inputs are valid: the FastAPI route and the lane's."""

    async def run(attempt: Attempt) -> tuple[int, dict[str, Any]]:
        amount = Money.parse(body.amount, body.currency)
        if amount.minor <= 0:
            raise InvalidRequest("amount must be more than zero", param="amount",
                                 code="invalid_amount")
        cmd = orders.NewOrder(
            merchant_reference=body.merchant_reference, amount=amount,
            description=body.description, channel=body.channel,
            provider=body.provider.value if body.provider else None,
            expires_in=body.expires_in, metadata=body.metadata,
        )
        return 201, await orders.create_order(ctx, cmd, attempt)

    status, payload = await run_idempotent(
        ctx, api_key, key, request_fingerprint("POST /v1/orders", body.model_dump()), run,
        one_statement=True)
    return JSONAnswer(payload, status)


_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


async def create_order_lane(request: Request) -> Response | None:
    """``POST /v1/orders`` on the lane (``api/lane.py``): a JSON body that ``CreateOrder``
    accepts, a valid ``Idempotency-Key`` (or none) and the right API key; anything else is
    None, and FastAPI's route answers it."""
    raw = await lane.json_body(request)
    if raw is lane.NOT_PLAIN:
        return None
    ctx: ServiceContext = request.app.state.runtime.ctx
    try:
        api_key = await merchant_auth(ctx, await bearer(request))
    except AuthenticationError:
        return None
    key = request.headers.get("idempotency-key")
    if key is not None and _IDEMPOTENCY_KEY.fullmatch(key) is None:
        return None
    try:
        body = CreateOrder.model_validate(raw)
    except ValidationError:
        return None
    return await _create_order(ctx, body, api_key, key)


@router.get("/orders/{order_id}", operation_id="getOrder", response_model=Order,
            responses=errors(400, 401, 404, 503))
async def get_order(order_id: OrderId, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    """The order with its payment, refunds and timeline."""
    return await orders.get_order(ctx, order_id)


@router.get("/orders", operation_id="listOrders", response_model=OrderList,
            responses=errors(400, 401, 503))
async def list_orders(
    ctx: Ctx, _: MerchantKey,
    status: OrderStatus | None = None, provider: ProviderId | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(min_length=3, max_length=81,
                                        pattern=orders.CURSOR_PATTERN,
                                        description="`next_cursor` of the previous page")] = None,
) -> dict[str, Any]:
    """Newest first; ``next_cursor`` pages on."""
    return await orders.list_orders(ctx, status=status.value if status else None,
                                    provider=provider.value if provider else None,
                                    limit=limit, cursor=cursor)


@router.post("/orders/{order_id}/close", operation_id="closeOrder", response_model=Order,
             responses=errors(400, 401, 404, 409, 413, 502, 503))
async def close_order(order_id: OrderId, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    """Close an unpaid order (at the provider too, where it has a close call). Closing a
    closed order answers the order."""
    return await orders.close_order(ctx, order_id)


@router.post("/orders/{order_id}/refunds", status_code=201, operation_id="createRefund",
             response_model=Refund,
             responses=errors(400, 401, 404, 408, 409, 413, 422, 503,
                              links={201: LINKS["refund"]}))
async def create_refund(
    order_id: OrderId, ctx: Ctx, api_key: MerchantKey, key: IdempotencyKey,
    payload: Annotated[CreateRefund | None, Body()] = None,
) -> JSONResponse:
    """Refund all or part of a paid order (all that is left when ``amount`` is absent).

    The answer is the refund, usually ``pending``: the provider's result arrives by
    notification or query, and ``refund.succeeded`` / ``refund.failed`` follow."""
    body = payload or CreateRefund()

    async def run(attempt: Attempt) -> tuple[int, dict[str, Any]]:
        return 201, await refunds.create_refund(ctx, order_id, body.amount, body.reason,
                                                attempt)

    fingerprint = request_fingerprint(f"POST /v1/orders/{order_id}/refunds", body.model_dump())
    status, response = await run_idempotent(ctx, api_key, key, fingerprint, run)
    return JSONAnswer(response, status)


@router.get("/refunds/{refund_id}", operation_id="getRefund", response_model=Refund,
            responses=errors(400, 401, 404, 503))
async def get_refund(refund_id: RefundId, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    return await refunds.get_refund(ctx, refund_id)


@router.get("/events", operation_id="listEvents", response_model=EventList,
            responses=errors(400, 401, 503))
async def list_events(
    ctx: Ctx, _: MerchantKey,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQUENCE,
                                       description="The last `sequence` you have seen")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """Merchant events (``order.paid``, ``refund.succeeded``…) after a sequence number."""
    return await orders.list_events(ctx, after=after, limit=limit)


@router.post("/events/{event_id}/redeliver", operation_id="redeliverEvent",
             response_model=Event, responses=errors(400, 401, 404, 409, 413, 503))
async def redeliver_event(event_id: EventId, ctx: Ctx, _: MerchantKey) -> dict[str, Any]:
    """Queue a webhook delivery again (e.g. a parked one after the endpoint is fixed)."""
    from minigate.jobs.delivery import redeliver

    event = await redeliver(ctx, event_id)
    if event is None:
        raise NotFound(f"no event {event_id}", param="id")
    return event
