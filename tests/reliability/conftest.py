"""Harnesses for reliability tests: a clock we can move, a runner we drive by hand, a
merchant webhook endpoint we can take down, and faults injected into provider calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from minigate.clock import FrozenClock
from minigate.jobs.runner import JobRunner
from tests.support import Harness, harness_settings, start_harness

WEBHOOK_SECRET = "whsec_test_reliability_0001"


@dataclass
class MerchantEndpoint:
    """A merchant's webhook receiver: records what it got; can be taken down."""

    down: bool = False
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks")
        async def hooks(request: Request) -> Response:
            self.attempts += 1
            if self.down:
                return Response(status_code=503)
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        return app


class FaultyTransport(httpx.AsyncBaseTransport):
    """Forwards to ``inner``; for matching paths it lets the request arrive, then loses
    the reply (a timeout after sending), ``times`` times."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lose_reply: dict[str, int] = {}
        #: Every path requested, in order (provider calls included), to count them.
        self.paths: list[str] = []

    def count(self, prefix: str) -> int:
        return sum(1 for p in self.paths if p.startswith(prefix))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = await self.inner.handle_async_request(request)
        left = self.lose_reply.get(request.url.path, 0)
        if left:
            self.lose_reply[request.url.path] = left - 1
            await response.aread()
            raise httpx.ReadTimeout("reply lost", request=request)
        return response


@dataclass
class Rig:
    gw: Harness
    clock: FrozenClock
    runner: JobRunner
    merchant: MerchantEndpoint
    faults: FaultyTransport

    async def run_jobs(self, seconds: float = 0) -> int:
        if seconds:
            self.clock.advance(seconds)
        return await self.runner.run_once()


async def _public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # the test merchant host "resolves" to a public address


async def make_rig(database_url: str, **settings: Any) -> Rig:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    merchant = MerchantEndpoint()
    values: dict[str, Any] = {"webhook_url": "https://merchant.test/hooks",
                              "webhook_secrets": [WEBHOOK_SECRET]}
    values.update(settings)
    gw = await start_harness(harness_settings(database_url, **values), clock=clock,
                             extra_routes={"merchant.test": httpx.ASGITransport(app=merchant.app())})
    faults = FaultyTransport(gw.network.routes["minigate.test"])
    gw.network.routes["minigate.test"] = faults
    runner = JobRunner(gw.ctx, gw.runtime.http, resolver=_public_resolver)
    return Rig(gw, clock, runner, merchant, faults)


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    r = await make_rig(database_url)
    try:
        yield r
    finally:
        await r.gw.api.aclose()
        await r.gw.runtime.stop()
