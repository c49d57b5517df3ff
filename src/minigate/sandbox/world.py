"""The sandbox world: one clock, the WeChat and Alipay cores, login, the notifier, and every
provider simulator, served as one FastAPI router under ``/sandbox``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from minigate.clock import Clock, SystemClock
from minigate.sandbox import credentials as cred
from minigate.sandbox.alipay_core import AlipayCore
from minigate.sandbox.cbtis import CbMerchant, CbtisSim
from minigate.sandbox.keystore import SandboxCredentials, ephemeral_credentials, with_wechat_keys
from minigate.sandbox.latipay import LatipaySim, Merchant
from minigate.sandbox.login import LoginSim
from minigate.sandbox.notifier import Notifier, NotifyOptions
from minigate.sandbox.qfpay import QfMerchant, QfpaySim
from minigate.sandbox.retention import Retention, RetentionPolicy
from minigate.sandbox.wechat_core import WechatCore
from minigate.sandbox.wechat_keys import SandboxWechatKeys
from minigate.sandbox.wechatpay import WechatpaySim
from minigate.sandbox.wechatpay_v2 import WechatpayV2Api

Outcome = Literal["success", "cancel", "fail"]


class WalletLogin(BaseModel):
    user: str = Field(min_length=1, max_length=64)
    appid: str = cred.MINI_APP_ID


class RequestPayment(BaseModel):
    model_config = ConfigDict(extra="allow")
    outcome: Outcome = "success"


class TradePay(BaseModel):
    orderStr: str | None = None  # noqa: N815 - the my.tradePay field name
    tradeNO: str | None = None  # noqa: N815
    outcome: Outcome = "success"


class SandboxWorld:
    """Everything the simulators share. ``http`` sends their notifications.

    ``public_url`` is minigate's address, for providers that bind one notification URL per
    account instead of taking it per request (QFPay binds it by e-mail). ``retention`` says
    how long simulated payments are kept (``minigate.sandbox.retention``).
    """

    def __init__(self, http: httpx.AsyncClient, *, clock: Clock | None = None,
                 time_scale: float = 1.0, public_url: str = "",
                 wechat_keys: SandboxWechatKeys | None = None,
                 credentials: SandboxCredentials | None = None,
                 retention: RetentionPolicy | None = None) -> None:
        # The same credentials must reach minigate's settings (sandbox_settings).
        creds = self.credentials = credentials or (
            with_wechat_keys(wechat_keys) if wechat_keys else ephemeral_credentials())
        self.clock = clock or SystemClock()
        self.retention = Retention(self.clock, retention)
        self.login = LoginSim(self.clock, {cred.MINI_APP_ID: creds.mini_app_secret})
        self.retention.also_sweep(self._forget_users)
        self.wechat = WechatCore(self.clock)
        self.alipay = AlipayCore(self.clock)
        self.notifier = Notifier(http, time_scale)
        self.latipay = LatipaySim(self, [Merchant(cred.LATIPAY_USER_ID, cred.LATIPAY_WALLET_ID,
                                                  creds.latipay_api_key, cred.LATIPAY_CURRENCY)])
        qfpay_notify = f"{public_url.rstrip('/')}/v1/notify/qfpay" if public_url else ""
        self.qfpay = QfpaySim(self, [QfMerchant(cred.QFPAY_APP_CODE, creds.qfpay_client_key,
                                                cred.QFPAY_CURRENCY, cred.MINI_APP_ID,
                                                notify_url=qfpay_notify)])
        self.cbtis = CbtisSim(self, [CbMerchant(cred.CBTIS_CLIENT_ID, creds.cbtis_api_key,
                                                creds.cbtis_webhook_secret, cred.CBTIS_CURRENCY,
                                                cred.MINI_APP_ID)])
        self.wechatpay = WechatpaySim(self, creds)
        self.wechatpay_v2 = WechatpayV2Api(self.wechatpay)

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/sandbox")
        router.include_router(self.latipay.router())
        router.include_router(self.qfpay.router())
        router.include_router(self.cbtis.router())
        router.include_router(self.wechatpay.router())
        router.add_api_route("/wechat-login/sns/jscode2session", self.jscode2session,
                             methods=["GET"], tags=["sandbox: wechat login"])
        router.add_api_route("/wallet/login", self.wallet_login, methods=["POST"],
                             tags=["sandbox: wallet"])
        router.add_api_route("/wallet/requestPayment", self.request_payment, methods=["POST"],
                             tags=["sandbox: wallet"])
        router.add_api_route("/wallet/tradePay", self.trade_pay, methods=["POST"],
                             tags=["sandbox: wallet"])
        router.add_api_route("/control/notifications", self.notification_options,
                             methods=["POST"], tags=["sandbox: control"])
        router.add_api_route("/control/retention", self.retention_status, methods=["GET"],
                             tags=["sandbox: control"])
        return router

    def _forget_users(self, cutoff: datetime | None) -> int:
        return self.login.forget_users(cutoff, self.retention.policy.max_records)

    async def retention_status(self) -> dict[str, Any]:
        """How long payments are kept, and how many of each kind are kept and forgotten."""
        policy = self.retention.policy
        return {"keep_hours": policy.keep.total_seconds() / 3600 if policy.keep else None,
                "max_records": policy.max_records,
                "kept": self.retention.kept(), "forgotten": self.retention.forgotten()}

    async def jscode2session(self, request: Request) -> JSONResponse:
        q = request.query_params
        if q.get("grant_type") != "authorization_code":
            return JSONResponse({"errcode": 40002, "errmsg": "invalid grant_type"})
        return JSONResponse(self.login.jscode2session(q.get("appid", ""), q.get("secret", ""),
                                                      q.get("js_code", "")))

    async def wallet_login(self, body: WalletLogin) -> dict[str, str]:
        """Like ``wx.login``: a fresh single-use code for this user (valid 5 minutes)."""
        return {"code": self.login.issue_code(body.user, body.appid)}

    async def request_payment(self, body: RequestPayment) -> dict[str, str]:
        """Like ``wx.requestPayment``: body = the params the mini program got from minigate."""
        params: dict[str, Any] = {k: v for k, v in (body.model_extra or {}).items()}
        return await self.wechat.request_payment(params, body.outcome)

    async def trade_pay(self, body: TradePay) -> dict[str, str]:
        """Like ``my.tradePay``."""
        return await self.alipay.trade_pay(body.orderStr, body.tradeNO, body.outcome)

    async def notification_options(self, body: NotifyOptions) -> NotifyOptions:
        """Make the simulators send duplicates, delay, or drop (blackhole) notifications."""
        self.notifier.options = body
        return body
