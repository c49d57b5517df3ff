"""``minigate sandbox``: the simulators as one HTTP server (like stripe-mock, but stateful).

Every simulator is under ``/sandbox/<provider>``. ``provider_at_root="wechatpay"`` also serves
WeChat Pay's own paths at the root (``/v3/…``, ``/pay/…``, ``/secapi/…``), like
api.mch.weixin.qq.com. Either way v3 signatures are checked over the canonical path, so a
stock SDK needs only its base URL changed. Over TLS (``serve(tls=True)``) the server asks
every client for a certificate, which the v2 refund endpoint requires, as WeChat does.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from minigate.clock import Clock
from minigate.sandbox import credentials as cred
from minigate.sandbox import keystore
from minigate.sandbox.keystore import SandboxCredentials, ephemeral_credentials
from minigate.sandbox.ledger import ledger_router
from minigate.sandbox.retention import RetentionPolicy
from minigate.sandbox.wechatpay_v2 import CLIENT_CERT_STATE
from minigate.sandbox.world import SandboxWorld
from minigate.transport import http_client

#: Providers whose real paths can also be served at the root.
ROOT_PROVIDERS = ("wechatpay",)


def create_sandbox_app(time_scale: float = 1.0, credentials: SandboxCredentials | None = None,
                       provider_at_root: str | None = None, *, clock: Clock | None = None,
                       http: httpx.AsyncClient | None = None,
                       retention: RetentionPolicy | None = None) -> FastAPI:
    """``http`` sends the notifications (tests pass an in-process one); ``retention``
    says how long simulated payments are kept (default: 24 hours, 100,000 of a kind)."""
    http = http or http_client(timeout=10)
    world = SandboxWorld(http, clock=clock, time_scale=time_scale, credentials=credentials,
                         retention=retention)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await world.notifier.aclose()
        await http.aclose()

    app = FastAPI(title="minigate sandbox", lifespan=lifespan)
    app.state.world = world
    app.include_router(world.router())
    app.include_router(ledger_router(world))  # read-only, for the fault soak
    if provider_at_root == "wechatpay":
        app.include_router(world.wechatpay.api_router())
    elif provider_at_root is not None:
        raise ValueError(f"only {', '.join(ROOT_PROVIDERS)} can be served at the root")

    @app.get("/sandbox/healthz", tags=["sandbox: control"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


class ClientCertProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, also handing the TLS client certificate (DER) of the
    connection to the app, in ``request.scope["state"]`` (uvicorn does not pass it on)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, CLIENT_CERT_STATE: der}


def serve(app: FastAPI, host: str, port: int, credentials: SandboxCredentials,
          tls: bool = False) -> None:
    """Run the sandbox app (HTTPS with an optional client certificate when ``tls``)."""
    # No access log: query strings carry test secrets (jscode2session). A client that keeps
    # an idle connection open must not hold a test run's teardown for long.
    options: dict[str, Any] = {"log_level": "info", "access_log": False,
                               "timeout_graceful_shutdown": 2}
    if not tls:
        uvicorn.run(app, host=host, port=port, **options)
        return
    if credentials.directory is None:
        raise ValueError("TLS needs a keys directory (its server and client certificates)")
    uvicorn.run(app, host=host, port=port, **options, http=ClientCertProtocol,
                ssl_certfile=str(credentials.file(keystore.SERVER_CERT)),
                ssl_keyfile=str(credentials.file(keystore.SERVER_KEY)),
                ssl_ca_certs=str(credentials.file(keystore.SANDBOX_CA)),
                ssl_cert_reqs=ssl.CERT_OPTIONAL)


def describe(base: str, credentials: SandboxCredentials | None = None, *, tls: bool = False,
             provider_at_root: str | None = None,
             retention: RetentionPolicy | None = None) -> str:
    """The test credentials and base URLs, printed at start."""
    c = credentials or ephemeral_credentials()
    wx_base = base if provider_at_root == "wechatpay" else f"{base}/sandbox/wechatpay"
    where = (f"kept in {c.directory} (print them: minigate sandbox credentials "
             f"--keys-dir {c.directory})" if c.directory
             else "RSA keys generated for this process only (use --keys-dir to keep them)")
    lines = [
        "minigate sandbox: stateful provider simulators (test credentials, not secrets)",
        f"  credentials   : {where}",
        f"  WeChat login  : {base}/sandbox/wechat-login  appid={cred.MINI_APP_ID} "
        f"secret={c.mini_app_secret}",
        f"  Latipay       : {base}/sandbox/latipay  user_id={cred.LATIPAY_USER_ID} "
        f"wallet_id={cred.LATIPAY_WALLET_ID} api_key={c.latipay_api_key}",
        f"  QFPay         : {base}/sandbox/qfpay  app_code={cred.QFPAY_APP_CODE} "
        f"client_key={c.qfpay_client_key} ({cred.QFPAY_CURRENCY}; notifications go to the "
        f"URL set with POST {base}/sandbox/qfpay/control {{\"notify_url\": …}})",
        f"  CBTIS         : {base}/sandbox/cbtis  client_id={cred.CBTIS_CLIENT_ID} "
        f"api_key={c.cbtis_api_key} webhook_secret={c.cbtis_webhook_secret} "
        f"({cred.CBTIS_CURRENCY})",
        f"  WeChat Pay    : base URL {wx_base}  mchid={cred.WECHATPAY_MCHID} "
        f"apiv3_key={c.wechatpay_apiv3_key} apiv2_key={c.wechatpay_apiv2_key} "
        f"serial_no={c.wechat.merchant_serial} public_key_id={c.wechat.public_key_id} "
        f"(control: POST {base}/sandbox/wechatpay/control)",
        f"  wallet        : {base}/sandbox/wallet/login | requestPayment | tradePay",
        f"  kept          : {_kept(retention or RetentionPolicy())} "
        f"(GET {base}/sandbox/control/retention)",
    ]
    if tls:
        lines.append(f"  TLS           : trust {c.file(keystore.SANDBOX_CA)}; v2 refunds need the "
                     f"client certificate {c.file(keystore.MERCHANT_CERT)}")
    else:
        lines.append("  TLS           : off (plain HTTP): v2 refunds are accepted WITHOUT the "
                     "client certificate WeChat requires; serve with --tls to enforce it")
    return "\n".join(lines)


def _kept(policy: RetentionPolicy) -> str:
    age = (f"for {policy.keep.total_seconds() / 3600:g} hours after its last activity"
           if policy.keep else "until restart")
    count = (f"at most {policy.max_records:,} of each kind" if policy.max_records
             else "no count limit")
    return f"each simulated payment {age}, {count}"
