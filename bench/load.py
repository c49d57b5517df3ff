"""The load generator. It runs in its own process (``multiprocessing``, spawn), never in the
server's, and drives real HTTP with ``httpx.AsyncClient``.

* closed loop: ``concurrency`` workers, each starting its next operation when the previous
  one answered (saturation throughput);
* open loop: operations start on a fixed schedule (``rate`` per second) whatever the server
  does; latency counts from the *scheduled* start, so a slow server cannot hide its queue
  (no coordinated omission). More than ``MAX_INFLIGHT`` operations in flight count as
  dropped errors.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import resource
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from bench.providers import PROVIDERS, ProviderBench
from bench.rawhttp import RawClient, Response
from minigate.observability.looplag import LoopLag

MAX_INFLIGHT = 2000


@dataclass
class Spec:
    op: str  # "checkout" | "notification"
    target: str  # "minigate" | "baseline"
    bases: list[str]  # one per API process; operations are split round-robin
    api_keys: list[str]
    provider: str = "latipay"
    mode: str = "closed"  # "closed" | "open"
    concurrency: int = 32
    rate: float = 0.0
    duration: float = 5.0
    pool_start: int = 0  # notification: first seeded order index this phase may use
    pool_size: int = 0
    #: where the simulated shopper's ``/sandbox/wallet/login`` is, when minigate runs in
    #: live mode against a separate sandbox process (empty: minigate's own sandbox)
    wallet_base: str = ""
    #: the baseline's checkout also takes the merchant's create request (``POST
    #: /bare/orders``) first, as minigate's takes ``POST /v1/orders`` (``--baseline-create``)
    baseline_create: bool = False
    #: the CPUs the load process may use (empty: any); the core suite keeps it off the
    #: measured server's core (:mod:`bench.speed`)
    cpus: tuple[int, ...] = ()


class PoolExhausted(Exception):
    pass


@dataclass
class Runner:
    spec: Spec
    provider: ProviderBench
    client: RawClient
    progress: Any
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0
    error_samples: list[str] = field(default_factory=list)
    notified: list[int] = field(default_factory=list)
    exhausted: bool = False
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _next_pool: int = 0
    #: the open-loop phase's notifications, signed by :meth:`prepare`, in pool order
    _signed: list[Any] = field(default_factory=list)

    def prepare(self) -> None:
        """Sign an open-loop phase's notifications before it starts.

        Latency counts from each operation's *scheduled* start, so whatever the load
        process does inside an operation is counted as the server's. Signed inside, a
        WeChat Pay v3 notification's RSA signature (about a millisecond of this process's
        CPU) queued the next ones behind it: both servers' p99 at half load were
        160-340 ms, and 7.6 / 5.3 ms with the signing done first (round 9,
        docs/performance.md). A closed-loop phase measures throughput, where signing
        as it goes is the load it can offer."""
        if self.spec.op != "notification" or self.spec.mode != "open":
            return
        count = min(self.spec.pool_size, self.scheduled_count())
        self._signed = [self._sign(self.spec.pool_start + k) for k in range(count)]

    def _sign(self, index: int) -> Any:
        """The provider's signed notification for the ``index``-th seeded order."""
        sign = self.provider.notification
        assert sign is not None, "a notification phase of a provider that notifies"
        return sign(self.provider.seed_number(index))

    async def op(self, i: int) -> None:
        base = self.spec.bases[i % len(self.spec.bases)]
        key = self.spec.api_keys[i % len(self.spec.api_keys)]
        if self.spec.op == "checkout":
            await (self._checkout_minigate(base, key, i) if self.spec.target == "minigate"
                   else self._checkout_bare(base, i))
        else:
            await self._notify(base)

    async def _checkout_minigate(self, base: str, key: str, i: int) -> None:
        p, c = self.provider, self.client
        r = await c.post(f"{base}/v1/orders", headers={
            "Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(12)},
            json_body={"merchant_reference": f"bench-{secrets.token_hex(6)}", "amount": p.amount,
                  "currency": p.currency, "description": "bench", "channel": p.channel,
                  "provider": p.name})
        _expect(r, 201)
        order = r.json()
        code = await self._login(base, i)
        r = await c.post(f"{base}/v1/client/orders/{order['id']}/pay",
                         json_body={"client_token": order["client_token"],
                                    "login_code": code})
        _expect(r, 200)
        if p.channel not in r.json():
            raise RuntimeError(f"no {p.channel} params: {r.text[:100]}")

    async def _checkout_bare(self, base: str, i: int) -> None:
        body: dict[str, Any] = {}
        if self.spec.baseline_create:
            r = await self.client.post(f"{base}/bare/orders", json_body={
                "merchant_reference": f"bench-{secrets.token_hex(6)}",
                "amount_minor": self.provider.amount_minor})
            _expect(r, 201)
            body["number"] = r.json()["number"]
        body["login_code"] = await self._login(base, i)
        r = await self.client.post(f"{base}/bare/checkout/{self.provider.name}",
                                   json_body=body)
        _expect(r, 200)

    async def _login(self, base: str, i: int) -> str:
        # one simulated shopper per checkout: the simulator allows 100 logins/min per user
        r = await self.client.post(f"{self.spec.wallet_base or base}/sandbox/wallet/login",
                                   json_body={"user": f"bench-{self.spec.target}-{i}"})
        _expect(r, 200)
        return str(r.json()["code"])

    async def _notify(self, base: str) -> None:
        if self._next_pool >= self.spec.pool_size:
            raise PoolExhausted
        index = self.spec.pool_start + self._next_pool
        n = (self._signed[self._next_pool] if self._next_pool < len(self._signed)
             else self._sign(index))
        self._next_pool += 1
        prefix = "/v1/notify" if self.spec.target == "minigate" else "/bare/notify"
        r = await self.client.post(f"{base}{prefix}/{self.provider.name}", content=n.body,
                                   headers=n.headers)
        if not self.provider.acked(r.status_code, r.content):
            raise RuntimeError(f"not acked: HTTP {r.status_code} {r.text[:80]}")
        if len(self.notified) < 200:
            self.notified.append(index)

    async def timed(self, start: float) -> None:
        i = next(self._counter)
        try:
            await self.op(i)
        except PoolExhausted:
            self.exhausted = True
            return
        except Exception as exc:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        self.latencies.append(time.perf_counter() - start)

    async def closed(self) -> None:
        deadline = time.perf_counter() + self.spec.duration

        async def worker() -> None:
            while time.perf_counter() < deadline and not self.exhausted:
                await self.timed(time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(self.spec.concurrency)))

    def scheduled_count(self) -> int:
        """How many operations an open-loop phase schedules (one per 1/rate seconds over
        its duration): counted once, so that ``prepare`` signs exactly as many as ``open``
        sends (comparing ``start + n / rate - start`` with the duration could schedule one
        more, by rounding)."""
        return math.ceil(self.spec.rate * self.spec.duration)

    async def open(self) -> None:
        start = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        for n in range(self.scheduled_count()):
            scheduled = start + n / self.spec.rate
            if self.exhausted:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= MAX_INFLIGHT:
                self.dropped += 1
                continue
            task = asyncio.create_task(self.timed(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=30)

    async def report_progress(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.progress.put(("progress", len(self.latencies), self.errors + self.dropped))


async def _run(spec: Spec, progress: Any) -> dict[str, Any]:
    client = RawClient(max_per_host=max(64, spec.concurrency * 2))
    # The load generator's own event-loop holds: latency is counted from each request's
    # scheduled start, so a pause here shows as latency of whichever server is measured.
    lags: list[float] = []
    lag = LoopLag(lambda late: lags.append(late) if late > 0.025 else None)
    ticker: asyncio.Task[None] | None = None
    try:
        runner = Runner(spec, PROVIDERS[spec.provider], client, progress)
        runner.prepare()  # before "started": neither timed nor counted in the phase's CPU
        ticker = asyncio.create_task(runner.report_progress())
        lag.start()
        progress.put(("started",))
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await (runner.closed() if spec.mode == "closed" else runner.open())
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:  # a failed phase stops them too (the error is reported by worker_main)
        await lag.stop()
        if ticker is not None:
            ticker.cancel()
        await client.aclose()
    client_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"latencies": runner.latencies, "errors": runner.errors, "dropped": runner.dropped,
            "error_samples": runner.error_samples, "elapsed": elapsed,
            "client_cpu_pct": round(100 * client_cpu / elapsed, 1), "notified": runner.notified,
            "pool_used": runner._next_pool, "pool_exhausted": runner.exhausted,
            "client_holds": [len(lags), sum(1 for v in lags if v > 0.1)],
            "client_max_hold_ms": round(1000 * max(lags, default=0.0), 1)}


def worker_main(spec: Spec, progress: Any) -> None:
    """Entry point of the load process."""
    if spec.cpus:
        os.sched_setaffinity(0, set(spec.cpus))
    try:
        progress.put(("result", asyncio.run(_run(spec, progress))))
    except Exception as exc:  # the orchestrator reports it
        progress.put(("failed", f"{type(exc).__name__}: {exc}"))


def _expect(r: Response, status: int) -> None:
    if r.status_code != status:
        raise RuntimeError(f"HTTP {r.status_code} (expected {status}): {r.text[:120]}")
