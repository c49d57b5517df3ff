"""CPU per operation, in-process and sequential: a quick, load-independent A/B tool.

``python -m bench.inproc --db sqlite --n 400`` runs minigate in sandbox mode inside this
process (HTTP over an in-process ASGI transport, no sockets) and measures, with
``time.process_time`` (so other load on the machine barely matters):

* ``notification``: a correctly signed Latipay notification for a seeded pending order,
  through the FastAPI route (``/v1/notify/latipay``);
* ``notification (ASGI only)``: the same, straight into the ASGI app (no HTTP client, no
  sockets), so route − this is the in-process client and this − service minigate's HTTP
  layer;
* ``notification (service)``: the same, calling ``handle_notification`` directly;
* ``notification (verify only)``: the connector's verification alone (so service − verify
  is the transaction with its rules);
* ``checkout``: create order (with an Idempotency-Key) + wallet login + pay (minigate calls
  the simulators over the in-process transport, so the simulators' CPU is included, as in
  ``bench run``).

It also counts SQL statements and pool checkouts per operation. The figures are for
comparing two versions of ``src/`` on one machine, not for quoting throughput: the load
benchmark (``python -m bench run``) measures real HTTP from a separate process.

``--memory N`` instead runs N checkouts + notifications under ``tracemalloc`` (after a
warm-up) and says which code kept the memory that is still allocated afterwards, per
operation: minigate's own modules, the sandbox simulators, or libraries. In sandbox mode
the simulators keep every order they ever saw, as a provider does; this separates that
growth from minigate's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import secrets
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from bench.providers import ProviderBench
from bench.providers.latipay import LATIPAY
from bench.servers import Database
from minigate.app import Runtime, create_app
from minigate.config import load_settings
from minigate.providers.base import IncomingNotification
from minigate.service.notifications import handle_notification

try:
    from minigate.store.hot import hot_store
except ImportError:  # a version of src/ before the lean path (A/B against an old tree)
    hot_store = None  # type: ignore[assignment]

API_KEY = "sk_test_inproc_bench"
PUBLIC = "http://minigate.bench"


class Counter:
    """SQL statements (through SQLAlchemy and through the lean path of ``store/hot.py``)
    and pool checkouts seen on one engine."""

    def __init__(self) -> None:
        self._statements = 0
        self.checkouts = 0
        self._hot: Any = None

    @property
    def statements(self) -> int:
        return self._statements + (self._hot.statements if self._hot is not None else 0)

    def attach(self, engine: Any) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self._statement)
        event.listen(engine.sync_engine.pool, "checkout", self._checkout)
        self._hot = hot_store(engine) if hot_store is not None else None

    def _statement(self, *_: Any) -> None:
        self._statements += 1

    def _checkout(self, *_: Any) -> None:
        self.checkouts += 1


async def _runtime(url: str) -> tuple[Runtime, httpx.AsyncClient]:
    settings = load_settings(database_url=url, api_key=API_KEY, public_url=PUBLIC,
                             mode="sandbox", run_jobs=False, log_level="WARNING",
                             sandbox={"time_scale": 1000.0})
    routes: dict[str, httpx.AsyncBaseTransport] = {}

    class Route(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await routes[request.url.host].handle_async_request(request)

    http = httpx.AsyncClient(transport=Route(), timeout=10)
    runtime = Runtime(settings, http=http, run_jobs=False, auto_migrate=False)
    routes["minigate.bench"] = httpx.ASGITransport(app=create_app(settings, runtime))
    await runtime.start()
    return runtime, httpx.AsyncClient(transport=Route(), base_url=PUBLIC, timeout=10)


async def checkout_once(api: httpx.AsyncClient, bench: ProviderBench, i: int) -> None:
    """One checkout through ``api`` (a client of :func:`_runtime`): create with an
    Idempotency-Key (as the load generator), the wallet's login, pay."""
    body = {"merchant_reference": "inproc-" + secrets.token_hex(6), "amount": bench.amount,
            "currency": bench.currency, "description": "bench", "channel": bench.channel,
            "provider": bench.name}
    r = await api.post("/v1/orders", json=body, headers={
        "Authorization": f"Bearer {API_KEY}", "Idempotency-Key": secrets.token_hex(12)})
    assert r.status_code == 201, r.text
    order = r.json()
    code = (await api.post("/sandbox/wallet/login", json={"user": f"bench{i % 50}"})).json()["code"]
    r = await api.post(f"/v1/client/orders/{order['id']}/pay",
                       json={"client_token": order["client_token"], "login_code": code})
    assert r.status_code == 200, r.text


async def _asgi_post(app: Any, path: str, headers: dict[str, str], body: bytes
                     ) -> tuple[int, bytes]:
    """One POST straight into the ASGI app, as a server would deliver it."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 50000),
             "headers": [(b"host", b"minigate.bench"),
                         (b"content-length", str(len(body)).encode())]
             + [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # a disconnect never comes while the answer is written
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _measure(label: str, n: int, counter: Counter,
                   op: Callable[[int], Awaitable[None]], rounds: int = 3) -> dict[str, Any]:
    """``rounds`` batches of ``n // rounds`` operations; the cheapest batch is reported
    (other load on the machine only ever adds CPU time)."""
    for i in range(min(20, n // 10)):  # warm up: imports, caches, the pool
        await op(n + i)
    per = max(n // rounds, 1)
    best: dict[str, Any] = {}
    for r in range(rounds):
        s0, c0 = counter.statements, counter.checkouts
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(r * per, (r + 1) * per):
            await op(i)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if not best or cpu / per < best["cpu_ms"] / 1000:
            best = {"op": label, "n": per, "cpu_ms": 1000 * cpu / per,
                    "wall_ms": 1000 * wall / per,
                    "statements": (counter.statements - s0) / per,
                    "checkouts": (counter.checkouts - c0) / per}
    return best


async def _memory(n: int, checkout: Callable[[int], Awaitable[None]],
                  notify: Callable[[int], Awaitable[None]]) -> list[dict[str, Any]]:
    """Bytes still allocated per (checkout + notification), by the code that allocated them."""
    for i in range(min(300, n)):  # warm-up: caches and pools reach their size
        await checkout(n + i)
    gc.collect()
    tracemalloc.start(10)
    before = tracemalloc.take_snapshot()
    for i in range(n):
        await checkout(i)
        await notify(i)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    owners: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        owner = _owner([frame.filename for frame in stat.traceback])
        owners[owner] = owners.get(owner, 0) + stat.size_diff
    return [{"owner": k, "bytes_per_op": v / n}
            for k, v in sorted(owners.items(), key=lambda kv: -kv[1])]


def _owner(files: list[str]) -> str:
    """The innermost minigate module on the allocation's stack, else the library."""
    for name in reversed(files):  # tracemalloc lists the oldest frame first
        if "/minigate/" in name and "site-packages" not in name:
            return "minigate/" + name.rsplit("/minigate/", 1)[1]
    last = files[-1] if files else "?"
    return last.rsplit("site-packages/", 1)[-1]


async def run(kind: str, n: int, memory: bool = False) -> list[dict[str, Any]]:
    db = Database(kind, Path(tempfile.mkdtemp(prefix="mg-inproc-")))
    await db.create()
    bench = LATIPAY
    notification = bench.notification
    assert notification is not None  # Latipay's notification settles an order
    seeded = 3 * n + 100
    await db.seed_pending(bench.name, bench.channel, bench.currency, bench.amount_minor,
                          bench.seed_number, seeded)
    runtime, api = await _runtime(db.url)
    counter = Counter()
    assert runtime.engine is not None
    counter.attach(runtime.engine)
    ctx = runtime.ctx

    async def notify_http(i: int) -> None:
        note = notification(bench.seed_number(i))
        r = await api.post("/v1/notify/latipay", content=note.body, headers=note.headers)
        assert bench.acked(r.status_code, r.content), r.text

    async def notify_service(i: int) -> None:
        note = notification(bench.seed_number(n + 50 + i))
        ack = await handle_notification(ctx, "latipay", note.headers, note.body)
        assert ack.status == 200

    app = create_app(runtime.settings, runtime)  # the same runtime: no second start

    async def notify_asgi(i: int) -> None:
        """The route through the ASGI app alone: no HTTP client, no sockets (so route −
        this is the in-process client, and this − service minigate's HTTP layer)."""
        note = notification(bench.seed_number(2 * n + 80 + i))
        status, body = await _asgi_post(app, "/v1/notify/latipay", note.headers, note.body)
        assert bench.acked(status, body), body

    client = ctx.provider("latipay")

    async def verify_only(i: int) -> None:
        note = notification(bench.seed_number(i))
        headers = {k.lower(): v for k, v in note.headers.items()}
        verified = client.verify_notification(
            IncomingNotification(headers, note.body, ctx.clock.now()))
        assert not inspect.isawaitable(verified) and verified.trusted

    async def checkout(i: int) -> None:
        await checkout_once(api, bench, i)

    try:
        if memory:
            return await _memory(n, checkout, notify_service)
        return [await _measure("notification", n, counter, notify_http),
                await _measure("notification (ASGI only)", n, counter, notify_asgi),
                await _measure("notification (service)", n, counter, notify_service),
                await _measure("notification (verify only)", n, counter, verify_only),
                await _measure("checkout", n, counter, checkout)]
    finally:
        await api.aclose()
        await runtime.stop()
        await db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inproc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--n", type=int, default=300, help="operations per measurement")
    parser.add_argument("--memory", action="store_true",
                        help="where the memory kept after --n operations was allocated")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if args.memory:
        for kind in kinds:
            print(f"{kind}: bytes still allocated per checkout + notification, by owner")
            for row in asyncio.run(run(kind, args.n, memory=True))[:12]:
                print(f"  {row['bytes_per_op']:9.0f}  {row['owner']}")
        return
    print(f"{'db':9} {'op':27} {'n':>5} {'CPU ms/op':>10} {'wall ms/op':>11} "
          f"{'SQL/op':>7} {'pool/op':>8}")
    for kind in kinds:
        for row in asyncio.run(run(kind, args.n)):
            print(f"{kind:9} {row['op']:27} {row['n']:5d} {row['cpu_ms']:10.2f} "
                  f"{row['wall_ms']:11.2f} {row['statements']:7.1f} {row['checkouts']:8.1f}")


if __name__ == "__main__":
    main()
