"""``minigate sandbox``: the simulators as one HTTP server (like stripe-mock, but stateful)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from minigate.sandbox import credentials as cred
from minigate.sandbox.ledger import ledger_router
from minigate.sandbox.world import SandboxWorld


def create_sandbox_app(time_scale: float = 1.0) -> FastAPI:
    http = httpx.AsyncClient(timeout=10)
    world = SandboxWorld(http, time_scale=time_scale)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await world.notifier.aclose()
        await http.aclose()

    app = FastAPI(title="minigate sandbox", lifespan=lifespan)
    app.state.world = world
    app.include_router(world.router())
    app.include_router(ledger_router(world))  # read-only, for the fault soak
    return app


def describe(base: str) -> str:
    """The public test credentials and base URLs, printed at start."""
    return "\n".join([
        "minigate sandbox: stateful provider simulators (test credentials, not secrets)",
        f"  WeChat login  : {base}/sandbox/wechat-login  appid={cred.MINI_APP_ID} "
        f"secret={cred.MINI_APP_SECRET}",
        f"  Latipay       : {base}/sandbox/latipay  user_id={cred.LATIPAY_USER_ID} "
        f"wallet_id={cred.LATIPAY_WALLET_ID} api_key={cred.LATIPAY_API_KEY}",
        f"  QFPay         : {base}/sandbox/qfpay  app_code={cred.QFPAY_APP_CODE} "
        f"client_key={cred.QFPAY_CLIENT_KEY} ({cred.QFPAY_CURRENCY}; notifications go to the "
        f"URL set with POST {base}/sandbox/qfpay/control {{\"notify_url\": …}})",
        f"  CBTIS         : {base}/sandbox/cbtis  client_id={cred.CBTIS_CLIENT_ID} "
        f"api_key={cred.CBTIS_API_KEY} webhook_secret={cred.CBTIS_WEBHOOK_SECRET} "
        f"({cred.CBTIS_CURRENCY})",
        f"  WeChat Pay    : {base}/sandbox/wechatpay  mchid={cred.WECHATPAY_MCHID} "
        f"apiv3_key={cred.WECHATPAY_APIV3_KEY} apiv2_key={cred.WECHATPAY_APIV2_KEY} "
        "(RSA keys generated per process; control: POST /sandbox/wechatpay/control)",
        f"  wallet        : {base}/sandbox/wallet/login | requestPayment | tradePay",
    ])
