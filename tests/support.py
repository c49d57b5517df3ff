"""Test support: an in-process network, and a harness around one minigate runtime."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from minigate.app import Runtime, create_app
from minigate.config import Settings, load_settings
from minigate.store.models import Event, IdempotencyRecord, Notification, Order, Payment, Refund

#: Every table a request could write to, for "bad input changes nothing" checks.
TABLES = {"orders": Order, "payments": Payment, "refunds": Refund, "events": Event,
          "notifications": Notification, "idempotency_keys": IdempotencyRecord}

API_KEY = "sk_test_" + "harness" * 3
PUBLIC_URL = "http://minigate.test"


class RoutingTransport(httpx.AsyncBaseTransport):
    """Routes requests by host to in-process ASGI apps: a tiny network without sockets."""

    def __init__(self, routes: Mapping[str, httpx.AsyncBaseTransport]) -> None:
        self.routes = dict(routes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # By the Host header, as a server would: a request pinned to a checked address
        # (webhooks) names its host there, not in the URL.
        host = request.headers.get("host", request.url.host).rsplit(":", 1)[0]
        transport = self.routes.get(host) or self.routes.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class Harness:
    runtime: Runtime
    api: httpx.AsyncClient
    network: RoutingTransport

    @property
    def ctx(self) -> Any:
        return self.runtime.ctx

    @property
    def world(self) -> Any:
        assert self.runtime.sandbox is not None
        return self.runtime.sandbox

    def merchant(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    async def create_order(self, **overrides: Any) -> dict[str, Any]:
        body = {"merchant_reference": "M-" + secrets.token_hex(4), "amount": "12.30",
                "currency": "NZD", "description": "Flat white x2", "channel": "wechat"}
        body.update(overrides)
        r = await self.api.post("/v1/orders", json=body, headers=self.merchant())
        assert r.status_code == 201, r.text
        return r.json()

    async def login_code(self, user: str = "alice") -> str:
        r = await self.api.post("/sandbox/wallet/login", json={"user": user})
        assert r.status_code == 200, r.text
        return str(r.json()["code"])

    async def pay(self, order: dict[str, Any], user: str = "alice") -> dict[str, Any]:
        code = await self.login_code(user) if order["channel"] == "wechat" else None
        r = await self.api.post(f"/v1/client/orders/{order['id']}/pay",
                                json={"client_token": order["client_token"], "login_code": code})
        assert r.status_code == 200, r.text
        return r.json()

    async def shopper_pays(self, pay: dict[str, Any], outcome: str = "success") -> dict[str, Any]:
        if "wechat" in pay:
            r = await self.api.post("/sandbox/wallet/requestPayment",
                                    json={**pay["wechat"], "outcome": outcome})
        else:
            r = await self.api.post("/sandbox/wallet/tradePay",
                                    json={**pay["alipay"], "outcome": outcome})
        assert r.status_code == 200, r.text
        return r.json()

    async def get_order(self, order_id: str) -> dict[str, Any]:
        r = await self.api.get(f"/v1/orders/{order_id}", headers=self.merchant())
        assert r.status_code == 200, r.text
        return r.json()

    async def row_counts(self) -> dict[str, int]:
        """Rows in every table, read straight from the database (not through the API)."""
        counts: dict[str, int] = {}
        async with self.ctx.sessions() as session:
            for name, model in TABLES.items():
                counts[name] = int((await session.execute(
                    select(func.count()).select_from(model))).scalar_one())
        return counts

    async def wait_status(self, order_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                order = await self.get_order(order_id)
                if order["status"] == status:
                    return order
                await asyncio.sleep(0.01)


def harness_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url, "api_key": API_KEY, "public_url": PUBLIC_URL,
        "mode": "sandbox", "sandbox": {"time_scale": 0.001},
    }
    values.update(overrides)
    return load_settings(**values)


async def start_harness(settings: Settings, *, run_jobs: bool = False,
                        extra_routes: Mapping[str, httpx.AsyncBaseTransport] | None = None,
                        clock: Any = None) -> Harness:
    network = RoutingTransport(extra_routes or {})
    http = httpx.AsyncClient(transport=network, timeout=10)
    runtime = Runtime(settings, http=http, run_jobs=run_jobs, auto_migrate=True, clock=clock)
    app = create_app(settings, runtime)
    network.routes["minigate.test"] = httpx.ASGITransport(app=app)
    await runtime.start()
    api = httpx.AsyncClient(transport=network, base_url=PUBLIC_URL, timeout=10)
    return Harness(runtime, api, network)


def postgres_required() -> bool:
    return os.environ.get("MINIGATE_REQUIRE_POSTGRES") == "1"
