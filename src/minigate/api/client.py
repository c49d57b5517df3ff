"""Client API, called by the mini program and authorised by the order's ``client_token``
(no API key: the token opens this one order's pay and status and nothing else)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from minigate.api.deps import Ctx
from minigate.api.merchant import OrderId
from minigate.api.openapi import errors
from minigate.api.schemas import ClientOrderStatus, ClientPay, PayParams
from minigate.service import payments

router = APIRouter(prefix="/v1/client", tags=["client"])

#: Client routes carry no bearer key: the order's client_token authorises them.
NO_BEARER: dict[str, Any] = {"security": []}


@router.post("/orders/{order_id}/pay", operation_id="payOrder", response_model=PayParams,
             response_model_exclude_none=True, openapi_extra=NO_BEARER,
             responses=errors(400, 401, 403, 408, 409, 413, 429, 502, 503))
async def pay(order_id: OrderId, body: ClientPay, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Exactly what ``wx.requestPayment`` (``wechat``) or ``my.tradePay`` (``alipay``) needs.

    Calling it again returns the same prepay while it is valid."""
    client_ip = request.client.host if request.client else "127.0.0.1"
    return await payments.pay(ctx, order_id, body.client_token, body.login_code, client_ip)


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
