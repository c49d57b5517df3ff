"""Client API, called by the mini program and authorised by the order's ``client_token``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from minigate.api.deps import Ctx
from minigate.api.schemas import ClientPay
from minigate.service import payments

router = APIRouter(prefix="/v1/client", tags=["client"])


@router.post("/orders/{order_id}/pay")
async def pay(order_id: str, body: ClientPay, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Exactly what ``wx.requestPayment`` (``wechat``) or ``my.tradePay`` (``alipay``) needs.

    Calling it again returns the same prepay while it is valid."""
    client_ip = request.client.host if request.client else "127.0.0.1"
    return await payments.pay(ctx, order_id, body.client_token, body.login_code, client_ip)


@router.get("/orders/{order_id}")
async def status(
    order_id: str, ctx: Ctx, client_token: Annotated[str, Query(min_length=1, max_length=128)]
) -> dict[str, Any]:
    """``{status, paid}``. Only a verified notification or a provider query changes it."""
    return await payments.client_status(ctx, order_id, client_token)
