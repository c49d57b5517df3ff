"""The bare baseline: the smallest honest handler doing the same provider work.

Same process layout as minigate in sandbox mode (the simulators are mounted in-process and
called over HTTP on loopback), the same provider work (each provider's signing, answer
verification, ``paySign``, notification verification and decryption, from its
:class:`~bench.providers.ProviderBench`), but none of minigate's guarantees: no idempotency
keys, no state machine, no outbox/timeline, no amount check, no row locks, no ORM, no
pydantic, no access log. Per operation:

* checkout: ``POST /bare/checkout/{provider}`` {login_code} → ``jscode2session`` over HTTP →
  the provider's signed create call to the simulator over HTTP (``bare_create``) → one
  ``INSERT`` → the pay params.
* the merchant's create request, only when a run asks for it (``bench run
  --baseline-create``, which judges checkout against a baseline that takes the same three
  requests as minigate's; not the issue's baseline): ``POST /bare/orders`` {amount_minor,
  merchant_reference} → one ``INSERT`` → the order's number; the checkout is then sent
  {login_code, number}, reads the order's amount back (one ``SELECT``: the amount charged
  is the stored one, never the client's) and charges that.
* notification: ``POST /bare/notify/{provider}`` → the provider's verification
  (``bare_verify``) → one ``INSERT`` → the provider's own ack.

Run: ``python -m bench.baseline --port 8100 --db sqlite+aiosqlite:///x.db``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bench import wxkeys
from bench.providers import PROVIDERS
from bench.providers.base import bench_number
from minigate.app import settle_heap
from minigate.config import GC_THRESHOLD
from minigate.observability.looplag import LoopLag
from minigate.sandbox import credentials as cred
from minigate.sandbox.world import SandboxWorld
from minigate.transport import http_client

DDL = [
    "CREATE TABLE IF NOT EXISTS bare_checkout (number VARCHAR(64) PRIMARY KEY, "
    "amount_minor BIGINT, openid VARCHAR(128), params TEXT, created_at DOUBLE PRECISION)",
    "CREATE TABLE IF NOT EXISTS bare_notification (event_key VARCHAR(160) PRIMARY KEY, "
    "body TEXT, received_at DOUBLE PRECISION)",
    "CREATE TABLE IF NOT EXISTS bare_order (number VARCHAR(64) PRIMARY KEY, "
    "amount_minor BIGINT, merchant_reference VARCHAR(128), created_at DOUBLE PRECISION)",
]


#: Event-loop lags above these bounds (seconds, as minigate's histogram spells its ``le``
#: labels) are what the bench counts per phase.
HOLD_BOUNDS = ("0.025", "0.1")


class Store:
    """One INSERT per operation (and, for a checkout of a created order, one SELECT),
    straight on the driver."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self._db: Any = None

    async def open(self) -> None:
        if self.sqlite:
            import aiosqlite

            self._db = await aiosqlite.connect(self.url.split(":///", 1)[1])
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
                await self._db.execute(f"PRAGMA {pragma}")
            for ddl in DDL:
                await self._db.execute(ddl)
            await self._db.commit()
        else:
            import asyncpg  # type: ignore[import-untyped]

            self._db = await asyncpg.create_pool(
                self.url.replace("postgresql+asyncpg", "postgresql"), min_size=2, max_size=20)
            for ddl in DDL:
                await self._db.execute(ddl)

    async def insert(self, table: str, values: tuple[Any, ...]) -> None:
        cols = ", ".join("?" if self.sqlite else f"${i + 1}" for i in range(len(values)))
        sql = f"INSERT INTO {table} VALUES ({cols})"  # table names are ours, never input
        if self.sqlite:
            await self._db.execute(sql, values)
            await self._db.commit()
        else:
            await self._db.execute(sql, *values)

    async def amount_of(self, number: str) -> int | None:
        """The stored amount of a created order (None: no such order)."""
        if self.sqlite:
            async with self._db.execute(
                    "SELECT amount_minor FROM bare_order WHERE number = ?", (number,)) as cur:
                row = await cur.fetchone()
            return None if row is None else int(row[0])
        value = await self._db.fetchval(
            "SELECT amount_minor FROM bare_order WHERE number = $1", number)
        return None if value is None else int(value)

    async def close(self) -> None:
        await self._db.close()


def create_baseline_app(db_url: str, base: str) -> FastAPI:
    http = http_client(timeout=10)  # the same pool limits as minigate's
    world = SandboxWorld(http, wechat_keys=wxkeys.keys())  # the run's shared WeChat keys
    store = Store(db_url)
    sim = f"{base}/sandbox"
    # The same event-loop lag measurement as minigate's (``minigate_event_loop_lag_seconds``),
    # counted by the bounds the bench reads (``Server.loop_holds``).
    holds = dict.fromkeys(HOLD_BOUNDS, 0)

    def observe(lag: float) -> None:
        for bound in HOLD_BOUNDS:
            if lag > float(bound):
                holds[bound] += 1

    lag = LoopLag(observe)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.open()
        # The same process setting as minigate's lifespan (``minigate.app.settle_heap``, at
        # minigate's default threshold): what exists once started is kept out of every
        # collection, and young collections come as often, so the two servers' full
        # collections (and the slow requests they make) compare like for like.
        settle_heap(GC_THRESHOLD)
        lag.start()
        yield
        await lag.stop()
        await world.notifier.aclose()
        await http.aclose()
        await store.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None)
    app.include_router(world.router())

    async def checkout(request: Request) -> Response:
        provider = PROVIDERS[request.path_params["provider"]]
        body = json.loads(await request.body())
        minor = provider.amount_minor
        if "number" in body:  # an order created by POST /bare/orders: charge its amount
            stored = await store.amount_of(str(body["number"]))
            if stored is None:
                return JSONResponse({"error": "no such order"}, 404)
            minor = stored
        r = await http.get(f"{sim}/wechat-login/sns/jscode2session", params={
            "appid": cred.MINI_APP_ID, "secret": cred.MINI_APP_SECRET,
            "js_code": body["login_code"], "grant_type": "authorization_code"})
        openid = r.json()["openid"]
        created = await provider.bare_create(http, sim, openid, minor)
        await store.insert("bare_checkout", (created["number"], minor, openid,
                                             json.dumps(created["payment"]), time.time()))
        return JSONResponse(created)

    async def create_order(request: Request) -> Response:
        body = json.loads(await request.body())
        number = bench_number("MGO")
        await store.insert("bare_order", (number, int(body["amount_minor"]),
                                          str(body["merchant_reference"]), time.time()))
        return JSONResponse({"number": number}, 201)

    async def notify(request: Request) -> Response:
        provider = PROVIDERS[request.path_params["provider"]]
        if provider.bare_verify is None:
            return Response(b"not applicable", 404, media_type="text/plain")
        body = await request.body()
        key = provider.bare_verify(request.headers, body)
        if key is None:
            return Response(b"rejected", 400, media_type="text/plain")
        await store.insert("bare_notification", (key, body.decode(), time.time()))
        status, ack, content_type = provider.ack
        return Response(ack, status, media_type=content_type)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def collections(_: Request) -> Response:
        """How many collections the collector has run, per generation (the bench reads
        the full ones, generation 2, around each phase, as it reads minigate's
        ``/metrics``)."""
        return JSONResponse({"collections": [g["collections"] for g in gc.get_stats()],
                             "threshold": gc.get_threshold(), "loop_holds": holds})

    app.add_route("/bare/orders", create_order, methods=["POST"])
    app.add_route("/bare/checkout/{provider}", checkout, methods=["POST"])
    app.add_route("/bare/notify/{provider}", notify, methods=["POST"])
    app.add_route("/healthz", healthz, methods=["GET"])
    app.add_route("/bare/gc", collections, methods=["GET"])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    app = create_baseline_app(args.db, f"http://127.0.0.1:{args.port}")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
