"""The composition root: settings in, a running FastAPI app out.

:class:`Runtime` builds everything once (engine, provider clients, login, job runner,
sandbox world) and tears it down; :func:`create_app` wires it into FastAPI's lifespan.
Tests build a Runtime with an in-process HTTP client, so provider calls, notifications
and webhooks all go through real HTTP handling without sockets.
"""

from __future__ import annotations

import copy
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from minigate import __version__, dashboard
from minigate.api import client, docs, errors, lane, merchant, notify, openapi
from minigate.clock import Clock, SystemClock
from minigate.config import Settings
from minigate.http_limits import BodyLimit
from minigate.jobs.destination import check_url
from minigate.jobs.runner import JobRunner, webhook_loopback_allowed
from minigate.login import WechatLogin
from minigate.logs import install_redaction, register_secrets
from minigate.observability import http as ops_http
from minigate.observability.looplag import LoopLag
from minigate.observability.metrics import EVENT_LOOP_LAG
from minigate.observability.providers import instrumented
from minigate.providers.base import ProviderClient
from minigate.providers.registry import build_providers
from minigate.sandbox.credentials import sandbox_settings
from minigate.sandbox.keystore import for_keys_dir
from minigate.sandbox.retention import RetentionPolicy
from minigate.sandbox.world import SandboxWorld
from minigate.service.context import ServiceContext
from minigate.service.notifications import MAX_BODY
from minigate.store.db import make_engine, migrate, session_factory
from minigate.store.hot import hot_store
from minigate.transport import HttpxTransport, http_client

log = logging.getLogger("minigate")


class Runtime:
    """Everything one minigate process holds, from start to stop."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 http: httpx.AsyncClient | None = None, auto_migrate: bool | None = None,
                 run_jobs: bool | None = None) -> None:
        install_redaction()
        register_secrets(secret_values(settings))
        self.sandbox_mode = settings.sandbox_mode
        # One set of sandbox credentials, wired into both the simulators and minigate.
        creds = for_keys_dir(settings.sandbox.keys_dir) if self.sandbox_mode else None
        self.settings = sandbox_settings(settings, creds) if self.sandbox_mode else settings
        register_secrets(secret_values(self.settings))
        self.clock = clock or SystemClock()
        self.http = http or http_client()
        self.auto_migrate = self.sandbox_mode if auto_migrate is None else auto_migrate
        self.run_jobs = self.settings.run_jobs if run_jobs is None else run_jobs
        self.sandbox: SandboxWorld | None = (
            SandboxWorld(self.http, clock=self.clock, time_scale=self.settings.sandbox.time_scale,
                         public_url=self.settings.public_url,
                         credentials=creds,
                         retention=RetentionPolicy.from_hours(self.settings.sandbox.keep_hours,
                                                              self.settings.sandbox.max_records))
            if self.sandbox_mode else None
        )
        self.engine: AsyncEngine | None = None
        self._ctx: ServiceContext | None = None
        self.runner: JobRunner | None = None
        self.transport: HttpxTransport | None = None
        #: ``minigate_event_loop_lag_seconds``, measured while the runtime runs.
        self.loop_lag = LoopLag(EVENT_LOOP_LAG.observe)

    @property
    def ctx(self) -> ServiceContext:
        if self._ctx is None:
            raise RuntimeError("runtime not started")
        return self._ctx

    async def start(self) -> None:
        if self.settings.webhook_url:  # refuse an unsafe destination at start, not at 3 a.m.
            check_url(self.settings.webhook_url, require_https=not self.sandbox_mode,
                      allow_loopback=webhook_loopback_allowed(self.settings))
        self.engine = make_engine(self.settings.database_url,
                                  pool_size=self.settings.database_pool_size)
        if self.auto_migrate:
            await migrate(self.engine)
        transport = self.transport = HttpxTransport(self.http)
        providers: dict[str, ProviderClient] = instrumented(
            build_providers(self.settings, transport, self.clock))
        login_cfg = self.settings.wechat_login
        login = (WechatLogin(transport.for_provider("wechat"), login_cfg.base_url,
                             login_cfg.appid, login_cfg.secret.get_secret_value())
                 if login_cfg.appid else None)
        self._ctx = ServiceContext(self.settings, session_factory(self.engine), providers,
                                   login, self.clock)
        if self.run_jobs:
            self.runner = JobRunner(self._ctx, self.http)
            self.runner.start()
        self.loop_lag.start()

    async def stop(self) -> None:
        await self.loop_lag.stop()
        if self.runner is not None:
            await self.runner.stop()
        if self.sandbox is not None:
            await self.sandbox.notifier.aclose()
        if self.transport is not None:
            await self.transport.aclose_tls_clients()
        await self.http.aclose()
        if self.engine is not None:
            await hot_store(self.engine).aclose()
            await self.engine.dispose()


def secret_values(settings: Settings) -> list[str]:
    """Every secret value in ``settings`` (for log redaction): SecretStr fields, and the
    database password."""
    from pydantic import BaseModel, SecretStr
    from sqlalchemy.engine import make_url

    found: list[str] = []

    def walk(model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, list):
                found.extend(v.get_secret_value() for v in value if isinstance(v, SecretStr))
            elif isinstance(value, BaseModel):
                walk(value)

    walk(settings)
    try:
        password = make_url(settings.database_url).password
    except Exception:  # noqa: BLE001 - a URL that does not parse has no password to hide
        password = None
    if password:
        found.append(str(password))
    return found


#: The requests the lane (``api/lane.py``) serves; their FastAPI routes stay for the rest.
LANE_ROUTES: list[tuple[str, str, lane.Endpoint]] = [
    ("POST", notify.PATH, notify.notify),
    ("POST", "/v1/orders", merchant.create_order_lane),
    ("POST", "/v1/client/orders/{order_id}/pay", client.pay_lane),
]


class _App(FastAPI):
    """FastAPI, with the hottest requests on a lane of their own (``api/lane.py``), and in
    sandbox mode the simulators served by an app of their own (:func:`_sandbox_app`)."""

    #: Set by :func:`create_app` in sandbox mode.
    sandbox_app: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        return lane.Lane(self, super().build_middleware_stack(), LANE_ROUTES,
                         prefixed=None if self.sandbox_app is None
                         else (openapi.SANDBOX, self.sandbox_app))


def _sandbox_app(router: APIRouter, settings: Settings) -> ASGIApp:
    """The simulators as the providers' servers would serve them, and as ``minigate
    sandbox`` serves them: a plain FastAPI app (its own 404s and validation answers), with
    minigate's body limit. minigate's own layers (request ids, its error envelope, the
    last-resort guard) are for minigate's API: a request to a simulator stands for a
    request to a provider's server, and in the benchmark it costs what it costs the
    baseline, which mounts the same routes on a plain app (``bench/baseline.py``)."""
    sandbox = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    sandbox.include_router(router)
    http = settings.http
    return BodyLimit(sandbox, max_body=http.max_body_bytes, notify_max_body=MAX_BODY,
                     body_timeout=http.body_timeout)


def settle_heap(threshold: int) -> None:
    """The garbage collector's setting for a server process, once it has started.

    What exists then (modules, the app, pools, providers: ~150 k objects) lives as long as
    the process. Frozen out of the collector's sight, a full collection takes microseconds
    instead of ~75 ms: that pause was the p99 of every endpoint. A full collection still
    walks everything allocated since that is alive, and it comes after a number of young
    collections, so the young ``threshold`` (``Settings.gc_threshold``; Python's own is
    700) sets how often that pause falls on a request."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(threshold, middle, oldest)


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The ASGI app. Pass a ``runtime`` to control clock and HTTP (tests)."""
    rt = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        settle_heap(rt.settings.gc_threshold)
        try:
            yield
        finally:
            await rt.stop()

    app = _App(title="minigate", version=__version__, lifespan=lifespan,
               description="Payments for WeChat and Alipay mini programs.",
               docs_url=None, redoc_url=None)
    app.state.runtime = rt
    errors.install(app)
    # -- HTTP contract (issue 12): body limits before anything else, offline docs --
    http = rt.settings.http
    app.add_middleware(BodyLimit, max_body=http.max_body_bytes, notify_max_body=MAX_BODY,
                       body_timeout=http.body_timeout)
    # In sandbox mode the simulators come first, as in the bench's baseline: they stand in
    # for the providers' own servers, and a request to one is matched before minigate's
    # routes (a sandbox path is never one of minigate's, and minigate's hottest requests
    # take the lane, not the routes).
    if rt.sandbox is not None:
        sandbox_router = rt.sandbox.router()
        app.include_router(sandbox_router)  # what /openapi.json describes
        app.sandbox_app = _sandbox_app(sandbox_router, rt.settings)  # what serves them
    docs.install(app)
    # The hot routes sit at the top level, the provider callbacks first: FastAPI keeps an
    # included router as one nested candidate that it matches twice per request (about a
    # tenth of a request's CPU); a top-level route is one regex. The dashboard stays an
    # included router, after them.
    app.router.add_route(notify.PATH, notify.notify, methods=["POST"], include_in_schema=False)
    _add_flat(app, merchant.router)
    _add_flat(app, client.router)
    dashboard.mount(app, rt)

    _document_notify(app)
    ops_http.install(app, rt)  # /healthz, /readyz, /metrics, X-Request-Id (issue 11)
    return app


def _add_flat(app: FastAPI, router: APIRouter) -> None:
    """``router``'s routes on ``app`` itself, in order. They are complete already: the
    router has no include-time prefix, dependencies or overrides to apply."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only FastAPI routes are moved to the top level")
        app.router.routes.append(route)


def _document_notify(app: FastAPI) -> None:
    """Add the plain-Starlette provider callback route to the generated OpenAPI, and
    finish it (api/openapi.py): once started, ``CreateOrder`` lists what this
    deployment's providers accept."""
    generate = app.openapi
    rt: Runtime = app.state.runtime

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            choices = None
            if rt._ctx is not None:
                ctx = rt._ctx
                choices = openapi.create_order_choices(
                    {name: (frozenset(c.value for c in p.channels), p.currencies)
                     for name, p in ctx.providers.items()},
                    ctx.settings.default_providers)
            schema = openapi.finish(copy.deepcopy(generate()), notify.OPENAPI_PATHS, choices)
            # Before start the providers are not known: do not keep the less precise one.
            app.openapi_schema = schema if choices is not None else None
            return schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
