"""Client API, called by the mini program and authorised by the order's ``client_token``
(no API key: the token opens this one order's pay and status and nothing else)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from minigate.api import lane
from minigate.api.deps import Ctx
from minigate.api.merchant import OrderId
from minigate.api.openapi import errors
from minigate.api.schemas import ID_PATTERN, ClientOrderStatus, ClientPay, PayParams
from minigate.service import payments
from minigate.service.context import ServiceContext

router = APIRouter(prefix="/v1/client", tags=["client"])

#: Client routes carry no bearer key: the order's client_token authorises them.
NO_BEARER: dict[str, Any] = {"security": []}


@router.post("/orders/{order_id}/pay", operation_id="payOrder", response_model=PayParams,
             response_model_exclude_none=True, openapi_extra=NO_BEARER,
             responses=errors(400, 401, 403, 408, 409, 413, 429, 502, 503))
async def pay(order_id: OrderId, body: ClientPay, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Exactly what ``wx.requestPayment`` (``wechat``) or ``my.tradePay`` (``alipay``) needs.

    Calling it again returns the same prepay while it is valid."""
    return await _pay(ctx, order_id, body, request)


async def _pay(ctx: ServiceContext, order_id: str, body: ClientPay,
               request: Request) -> dict[str, Any]:
    """``POST …/pay`` once its inputs are valid: the FastAPI route and the lane's."""
    client_ip = request.client.host if request.client else "127.0.0.1"
    return await payments.pay(ctx, order_id, body.client_token, body.login_code, client_ip)


_ORDER_ID = re.compile(ID_PATTERN)


async def pay_lane(request: Request) -> Response | None:
    """``POST /v1/client/orders/{order_id}/pay`` on the lane (``api/lane.py``): a valid
    order id and a JSON body that ``ClientPay`` accepts; anything else is None, and
    FastAPI's route answers it. The answer is serialised as the route's response model
    serialises it (``PayParams``, without the fields that are None)."""
    order_id: str = request.path_params["order_id"]
    if _ORDER_ID.fullmatch(order_id) is None:
        return None
    raw = await lane.json_body(request)
    if raw is lane.NOT_PLAIN:
        return None
    try:
        body = ClientPay.model_validate(raw)
    except ValidationError:
        return None
    ctx: ServiceContext = request.app.state.runtime.ctx
    answer = PayParams.model_validate(await _pay(ctx, order_id, body, request))
    return Response(answer.model_dump_json(exclude_none=True, by_alias=True),
                    media_type="application/json")


@router.get("/orders/{order_id}", operation_id="getOrderStatus",
            response_model=ClientOrderStatus, openapi_extra=NO_BEARER,
            responses=errors(400, 401, 503))
async def status(
    order_id: OrderId, ctx: Ctx,
    client_token: Annotated[str, Query(min_length=1, max_length=128,
                                       description="The order's `client_token`")],
) -> dict[str, Any]:
    """``{status, paid}``. Only a verified notification or a provider query changes it."""
    return await payments.client_status(ctx, order_id, client_token)
