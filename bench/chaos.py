"""``python -m bench chaos``: a fault-injecting soak of minigate in live mode.

Processes (all on 127.0.0.1, logs in the temporary directory printed at start):

* a private PostgreSQL cluster (:mod:`bench.pgcluster`) that the soak stops and starts;
* ``minigate sandbox`` (the provider simulators, Latipay here) as a separate process;
* two ``minigate serve`` API processes (job runner off) and one ``minigate worker``, all
  live mode, on one database, run through :mod:`bench.chaosproc` (which only lets the
  webhooks reach the harness's plain-HTTP loopback endpoint);
* in this process: the driver, the fault injector and the merchant's webhook endpoint
  (:mod:`bench.chaos_receiver`), which fails half the time and goes down for a while.

The driver keeps a bounded number of flows going: an order (create with an
Idempotency-Key → wallet login → pay → the sandbox wallet pays → Latipay notifies), then for
most paid orders one or two partial refunds with Idempotency-Keys; some orders are left to
expire. Every call is retried until it gets a definitive answer, with the same key, on either
API process: after connection errors and timeouts, 409 ``idempotency_key_in_use`` and 503
(after its Retry-After). Every 5xx is recorded.

Faults at random times: SIGKILL of an API process or of the worker (restarted), PostgreSQL
``stop -m immediate`` or ``-m fast`` then start, a SIGKILL or a PostgreSQL stop timed to land
while a refund or an order creation is in flight, and the webhook endpoint going down.

Then it settles (PostgreSQL up, every process up, the endpoint healthy) until nothing is
left to reconcile or deliver, or a bound; collects the simulator's ledger
(``GET /sandbox/_ledger``) and minigate's database, and prints the verdict of
:func:`bench.chaos_check.check`. Exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import chaos_check
from bench.chaos_check import Facts, MgOrder, MgRefund, SimOrder
from bench.chaos_net import Balancer, Receiver
from bench.pgcluster import PrivateCluster
from bench.servers import Database, SandboxProcess, Server, free_port

FAULT_KINDS = ("kill-api", "kill-worker", "pg-stop-immediate", "pg-stop-fast",
               "kill-during-refund", "kill-during-create", "pg-stop-during-refund",
               "crash-point", "webhook-endpoint-down")
#: faults that leave an operation to be retried after minigate's 60 s in-flight lock
TIMED = ("kill-during-refund", "kill-during-create", "pg-stop-during-refund", "crash-point")
#: minigate's crash points (``MINIGATE_CRASH_AT``, src/minigate/faults.py), taken in turn
CRASH_POINTS = ("refund.claimed", "order.committed", "refund.answered", "refund.reserved")


@dataclass
class Plan:
    duration: float  # seconds of load (faults inside it), before draining and settling
    faults: int
    seed: int
    concurrency: int = 6  # flows at once
    rate: float = 3.0  # new flows per second, at most
    settle: float = 120.0  # seconds at most, after the last flow ended
    op_bound: float = 150.0  # seconds one call is retried for (> the 60 s in-flight lock)
    fault_window: tuple[float, float] = (0.08, 0.8)  # fraction of duration
    progress_every: float = 15.0
    #: the timed faults first (short run: their retries wait out the 60 s in-flight lock)
    timed_first: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.short:
            plan = cls(duration=args.duration or 45.0, faults=args.faults or len(FAULT_KINDS),
                       seed=args.seed, settle=90.0, op_bound=110.0, fault_window=(0.05, 0.6),
                       progress_every=10.0, timed_first=True)
        else:
            plan = cls(duration=args.duration or 900.0, faults=args.faults or 30,
                       seed=args.seed)
        return plan


def schedule(plan: Plan) -> list[tuple[float, str]]:
    """(seconds from start, kind): every kind in turn (shuffled per round), at random times
    inside the fault window."""
    rng = random.Random(plan.seed)
    kinds: list[str] = []
    while len(kinds) < plan.faults:
        round_ = list(FAULT_KINDS)
        rng.shuffle(round_)
        if plan.timed_first:  # crash-point last of them: by then some order is paid
            round_.sort(key=lambda kind: (kind not in TIMED, kind == "crash-point"))
        kinds += round_
    kinds = kinds[:plan.faults]
    lo, hi = (plan.duration * f for f in plan.fault_window)
    times = sorted(rng.uniform(lo, hi) for _ in kinds)
    return list(zip(times, kinds, strict=True))


@dataclass
class Stats:
    flows: int = 0
    orders: int = 0
    expiring: int = 0
    paid: int = 0
    refunds_sent: int = 0
    refund_answers: Counter[str] = field(default_factory=Counter)
    definitive_refusals: Counter[str] = field(default_factory=Counter)
    status_503: int = 0
    in_flight_409: int = 0
    transport_errors: int = 0
    gave_up: Counter[str] = field(default_factory=Counter)
    not_paid_in_time: int = 0
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    replay_mismatches: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    #: how the first attempt of each timed fault's request ended
    timed_first: Counter[str] = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=dict)

    def took(self, what: str, seconds: float) -> None:
        self.latency.setdefault(what, []).append(seconds)

    def typical(self, what: str, default: float) -> float:
        values = sorted(self.latency.get(what, [])[-50:])
        return values[len(values) // 2] if values else default


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def error_code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


class Soak:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="minigate-chaos-"))
        self.stats = Stats()
        self.api_key = "sk_chaos_" + secrets.token_urlsafe(16)
        self.secret = "whsec_chaos_" + secrets.token_urlsafe(16)
        self.receiver = Receiver(self.secret, random.Random(plan.seed + 1))
        self.cluster: PrivateCluster | None = None
        self.db: Database | None = None
        self.sandbox = SandboxProcess(self.tmp)
        self.apis: list[Server] = []
        self.balancer: Balancer | None = None
        self.worker: Server | None = None
        self.t0 = self.t_start = time.monotonic()
        self.rr = 0
        self.flows: set[asyncio.Task[None]] = set()
        self.refundable: list[tuple[str, int]] = []  # paid orders kept for timed faults
        self.seen: dict[str, str] = {}  # Idempotency-Key -> the resource id it answered
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=2.0),
                                      limits=httpx.Limits(max_connections=64))

    # -- output --------------------------------------------------------------------------
    def say(self, text: str) -> None:
        sys.stdout.write(f"[{time.monotonic() - self.t0:6.1f}s] {text}\n")
        sys.stdout.flush()

    # -- processes -----------------------------------------------------------------------
    def setup(self) -> None:
        self.say(f"chaos soak: seed {self.plan.seed}, {self.plan.duration:.0f} s of load, "
                 f"{self.plan.faults} faults; logs in {self.tmp}")
        self.cluster = PrivateCluster()
        self.cluster.start()
        self.db = Database("postgres", self.tmp,
                           pg_dsn=self.cluster.url().replace("+asyncpg", ""))
        asyncio.run(self.db.create())
        env = {
            "MINIGATE_RUN_JOBS": "false",
            "MINIGATE_WEBHOOK_URL": self.receiver.url,
            "MINIGATE_CHAOS_WEBHOOK_URL": self.receiver.url,
            "MINIGATE_WEBHOOK_SECRETS": f'["{self.secret}"]',
            # minigate's own settings, shortened so a few minutes see many reconciliations
            "MINIGATE_RECONCILE_SCHEDULE": "[5, 10, 20, 30]",
            "MINIGATE_JOB_LEASE_SECONDS": "20",
            "MINIGATE_CHAOS_BACKOFF_SCALE": "0.02",
            "MINIGATE_CHAOS_BACKOFF_CAP": "10",
        }
        ports = [free_port(), free_port()]
        self.balancer = Balancer(ports)  # minigate's public URL; it runs in main()'s loop
        env["MINIGATE_PUBLIC_URL"] = self.balancer.base
        credentials = self.sandbox.credentials()  # created here, first
        self.apis = [Server("minigate", self.db.url, self.tmp, api_key=self.api_key, port=port,
                            entry="bench.chaosproc", extra_env=env,
                            live_sandbox=self.sandbox.base, live_credentials=credentials)
                     for port in ports]
        self.worker = Server("worker", self.db.url, self.tmp, api_key=self.api_key,
                             entry="bench.chaosproc", extra_env=env | {"MINIGATE_RUN_JOBS": "true"},
                             live_sandbox=self.sandbox.base, live_credentials=credentials)
        with ThreadPoolExecutor(4) as pool:  # each start waits for its process to be ready
            # a generous bound: on a loaded machine four Python processes start slowly
            starts = [self.sandbox.start, *(api.start for api in self.apis), self.worker.start]
            for started in [pool.submit(start, 120.0) for start in starts]:
                started.result()
        httpx.post(f"{self.sandbox.base}/sandbox/latipay/control",
                   json={"retry_every_seconds": 2.0}, timeout=5).raise_for_status()
        self.say(f"up: postgres :{self.cluster.port} ({self.cluster.root}), sandbox "
                 f":{self.sandbox.port}, api :{self.apis[0].port} :{self.apis[1].port}, "
                 f"worker, webhook endpoint :{self.receiver.port}")

    def teardown(self) -> None:
        stops = [*(api.stop for api in self.apis), *([self.worker.stop] if self.worker else []),
                 self.sandbox.stop]
        for stop in stops:
            with contextlib.suppress(Exception):
                stop()
        if self.cluster is not None:
            self.cluster.close()

    async def restart(self, server: Server, label: str) -> None:
        for attempt in range(5):
            try:
                await asyncio.to_thread(server.start, 60.0)
                return
            except RuntimeError as exc:
                self.say(f"  {label} did not come back ({exc}); again")
                await asyncio.sleep(1 + attempt)
        raise RuntimeError(f"{label} could not be restarted")

    async def kill(self, server: Server, label: str, down: float) -> str:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.proc.wait)
        await asyncio.sleep(down)
        started = time.monotonic()
        await self.restart(server, label)
        return f"{label} SIGKILLed, back after {down + time.monotonic() - started:.1f} s"

    async def pg_outage(self, mode: str, down: float) -> str:
        assert self.cluster is not None
        await asyncio.to_thread(self.cluster.stop, mode)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.cluster.start)
        return f"PostgreSQL stopped ({mode}) for {down:.1f} s"

    # -- HTTP with retries ---------------------------------------------------------------
    def pick(self) -> int:
        self.rr += 1
        return self.rr % len(self.apis)

    async def call(self, method: str, path: str, label: str, *, body: Any = None,
                   key: str | None = None, pin: int | None = None, bound: float | None = None,
                   once: bool = False) -> httpx.Response | None:
        """Until a definitive answer (None: gave up after ``bound`` seconds, or at the first
        failure with ``once``). Same key every time; ``pin``: the first attempt's process."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if key:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + (bound or self.plan.op_bound)
        index = pin if pin is not None else self.pick()
        first = pin is not None  # a timed fault's request: note how its first attempt ended
        while True:
            wait = 0.3 + self.rng.random() * 0.3
            started = time.monotonic()
            try:
                r = await self.http.request(method, self.apis[index].base + path, json=body,
                                            headers=headers)
            except httpx.TransportError:
                self.stats.transport_errors += 1
                if first:
                    self.stats.timed_first[f"{label}: cut off (no answer)"] += 1
            else:
                code = error_code(r)
                if first:
                    self.stats.timed_first[f"{label}: answered {r.status_code}"] += 1
                if r.status_code >= 500:
                    self.stats.server_errors.append({
                        "t": round(time.monotonic() - self.t0, 1), "status": r.status_code,
                        "method": method, "path": label, "code": code,
                        "body": r.text[:160]})
                    if r.status_code == 503:
                        self.stats.status_503 += 1
                        with contextlib.suppress(ValueError):
                            wait = min(5.0, float(r.headers.get("Retry-After", "1")))
                    else:
                        wait = 1.0
                elif r.status_code == 409 and code == "idempotency_key_in_use":
                    self.stats.in_flight_409 += 1
                    wait = 1.0
                else:
                    self.stats.took(label, time.monotonic() - started)
                    return r
            first = False
            if once or time.monotonic() + wait > deadline:
                if not once:
                    self.stats.gave_up[label] += 1
                return None
            await asyncio.sleep(wait)
            index = self.pick()

    def remember(self, key: str, resource: str, what: str) -> None:
        """The same key must always answer with the same order or refund."""
        first = self.seen.setdefault(key, resource)
        if first != resource:
            self.stats.replay_mismatches.append(f"{what} {key}: {first}, then {resource}")

    # -- flows ---------------------------------------------------------------------------
    async def create_order(self, n: int, expires_in: int | None = None,
                           pin: int | None = None) -> dict[str, Any] | None:
        amount = self.rng.randint(1000, 9999)
        key = f"ord-{n}-{secrets.token_hex(4)}"
        body: dict[str, Any] = {"merchant_reference": f"chaos-{n}-{secrets.token_hex(3)}",
                                "amount": money(amount), "currency": "NZD",
                                "description": "chaos soak", "channel": "wechat",
                                "provider": "latipay"}
        if expires_in:
            body["expires_in"] = expires_in
        r = await self.call("POST", "/v1/orders", "POST /v1/orders", body=body, key=key,
                            pin=pin)
        if r is None:
            return None
        if r.status_code not in (200, 201):
            self.stats.definitive_refusals[f"create {r.status_code} {error_code(r)}"] += 1
            return None
        order: dict[str, Any] = r.json()
        self.remember(key, order["id"], "order")
        self.stats.orders += 1
        if self.rng.random() < 0.2:  # the same request again: the same order
            again = await self.call("POST", "/v1/orders", "POST /v1/orders", body=body, key=key)
            if again is not None and again.status_code in (200, 201):
                self.remember(key, again.json()["id"], "order")
        return order

    async def pay(self, n: int, order: dict[str, Any]) -> bool:
        """Pay through minigate (a fresh wx.login code per attempt: codes are single use),
        then in the sandbox wallet."""
        deadline = time.monotonic() + self.plan.op_bound
        params = None
        while params is None and time.monotonic() < deadline:
            login = await self.http.post(f"{self.sandbox.base}/sandbox/wallet/login",
                                         json={"user": f"chaos-{n}"})
            r = await self.call("POST", f"/v1/client/orders/{order['id']}/pay",
                                "POST /v1/client/orders/{id}/pay", once=True,
                                body={"client_token": order["client_token"],
                                      "login_code": login.json()["code"]})
            if r is None:
                await asyncio.sleep(0.5)
            elif r.status_code == 200:
                params = r.json()["wechat"]
            else:
                self.stats.definitive_refusals[f"pay {r.status_code} {error_code(r)}"] += 1
                return False
        if params is None:
            self.stats.gave_up["pay"] += 1
            return False
        paid = await self.http.post(f"{self.sandbox.base}/sandbox/wallet/requestPayment",
                                    json=params)
        if paid.json().get("errMsg") != "requestPayment:ok":
            self.stats.definitive_refusals[f"wallet {paid.json().get('errMsg')}"] += 1
            return False
        self.stats.paid += 1
        return True

    async def wait_paid(self, order_id: str, bound: float = 60.0) -> bool:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            r = await self.call("GET", f"/v1/orders/{order_id}", "GET /v1/orders/{id}",
                                once=True)
            if r is not None and r.status_code == 200 and r.json()["status"] == "paid":
                return True
            await asyncio.sleep(1.0)
        self.stats.not_paid_in_time += 1
        return False

    async def refund(self, n: int, order_id: str, minor: int, pin: int | None = None) -> None:
        key = f"rfd-{n}-{secrets.token_hex(4)}"
        body = {"amount": money(minor), "reason": f"{chaos_check.KEY_TAG} {key}"}
        path, label = f"/v1/orders/{order_id}/refunds", "POST /v1/orders/{id}/refunds"
        self.stats.refunds_sent += 1
        r = await self.call("POST", path, label, body=body, key=key, pin=pin)
        if r is None:
            return
        if r.status_code not in (200, 201):
            self.stats.definitive_refusals[f"refund {r.status_code} {error_code(r)}"] += 1
            return
        self.stats.refund_answers[r.json().get("status", "?")] += 1
        self.remember(key, r.json()["id"], "refund")
        if self.rng.random() < 0.3:  # the merchant retries anyway: the same refund
            again = await self.call("POST", path, label, body=body, key=key)
            if again is not None and again.status_code in (200, 201):
                self.remember(key, again.json()["id"], "refund")

    async def order_flow(self, n: int) -> None:
        expiring = self.rng.random() < 0.15
        order = await self.create_order(n, expires_in=60 if expiring else None)
        if order is None:
            return
        if expiring:  # left to expire: half of them with a prepay at Latipay to close
            self.stats.expiring += 1
            if self.rng.random() < 0.5:
                await self.pay_params_only(n, order)
            return
        if not await self.pay(n, order) or not await self.wait_paid(order["id"]):
            return
        amount = int(round(float(order["amount"]) * 100))
        if self.rng.random() < 0.25:
            self.refundable.append((order["id"], amount))  # for a timed fault
            return
        first = self.rng.randint(1, amount // 2)
        await self.refund(n, order["id"], first)
        if self.rng.random() < 0.5:
            await self.refund(n, order["id"], self.rng.randint(1, amount - first))
        if self.rng.random() < 0.1:  # more than is left: must be refused, not sent
            await self.refund(n, order["id"], amount)

    async def pay_params_only(self, n: int, order: dict[str, Any]) -> None:
        login = await self.http.post(f"{self.sandbox.base}/sandbox/wallet/login",
                                     json={"user": f"chaos-{n}"})
        await self.call("POST", f"/v1/client/orders/{order['id']}/pay",
                        "POST /v1/client/orders/{id}/pay", once=True,
                        body={"client_token": order["client_token"],
                              "login_code": login.json()["code"]})

    def launch(self, coro: Any) -> None:
        task = asyncio.create_task(self.guard(coro))
        self.flows.add(task)
        task.add_done_callback(self.flows.discard)

    async def guard(self, coro: Any) -> None:
        try:
            await coro
        except httpx.HTTPError as exc:  # the sandbox itself is never faulted: report it
            self.stats.gave_up[f"harness {type(exc).__name__}"] += 1

    async def drive(self, until: float, faults: asyncio.Task[None]) -> None:
        """New flows until ``until`` and every fault has happened."""
        n = 0
        while time.monotonic() < until or not faults.done():
            if len(self.flows) < self.plan.concurrency:
                n += 1
                self.stats.flows += 1
                self.launch(self.order_flow(n))
            await asyncio.sleep(1.0 / self.plan.rate)

    # -- faults --------------------------------------------------------------------------
    async def inject(self, kind: str) -> str:
        rng = self.rng
        if kind == "kill-api":
            i = rng.randrange(len(self.apis))
            return await self.kill(self.apis[i], f"api-{i}", rng.uniform(0.5, 3))
        if kind == "kill-worker":
            assert self.worker is not None
            return await self.kill(self.worker, "worker", rng.uniform(0.5, 5))
        if kind in ("pg-stop-immediate", "pg-stop-fast"):
            return await self.pg_outage(kind.rsplit("-", 1)[1], rng.uniform(2, 8))
        if kind == "webhook-endpoint-down":
            down = rng.uniform(10, 30)
            await self.receiver.down()
            asyncio.get_running_loop().call_later(
                down, lambda: asyncio.ensure_future(self.receiver.up()))
            return f"webhook endpoint down for {down:.0f} s"
        i = rng.randrange(len(self.apis))
        n = 1_000_000 + self.stats.faults[kind] * 1000 + rng.randrange(1000)
        if kind == "crash-point":
            return await self.crash_at(i, n)
        if kind == "kill-during-create":
            delay = rng.uniform(0.0, self.stats.typical("POST /v1/orders", 0.03))
            self.launch(self.timed_create(n, i))
        else:
            if not self.refundable:
                return await self.inject("kill-api") + " (no paid order was ready)"
            order_id, amount = self.refundable.pop(rng.randrange(len(self.refundable)))
            delay = rng.uniform(0.0, self.stats.typical("POST /v1/orders/{id}/refunds", 0.05))
            self.launch(self.refund(n, order_id, rng.randint(1, amount), pin=i))
        await asyncio.sleep(delay)
        if kind == "pg-stop-during-refund":
            what = await self.pg_outage("immediate", rng.uniform(2, 6))
        else:
            what = await self.kill(self.apis[i], f"api-{i}", rng.uniform(0.2, 1.5))
        return f"{what}, {1000 * delay:.0f} ms after the request was sent"

    async def crash_at(self, i: int, n: int) -> str:
        """Restart API process ``i`` armed with one of minigate's crash points, send it the
        operation that passes there (it SIGKILLs itself at that point; other traffic may get
        there first, which is a crash at the same point), then restart it unarmed."""
        server, label = self.apis[i], f"api-{i}"
        point = CRASH_POINTS[(self.stats.faults["crash-point"] - 1) % len(CRASH_POINTS)]
        if point.startswith("refund") and not self.refundable:
            point = "order.committed"
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.proc.wait)
        plain = server.extra_env
        server.extra_env = plain | {"MINIGATE_CRASH_AT": point}
        try:
            await self.restart(server, label)
            if point == "order.committed":
                self.launch(self.timed_create(n, i))
            else:
                order_id, amount = self.refundable.pop(self.rng.randrange(len(self.refundable)))
                self.launch(self.refund(n, order_id, self.rng.randint(1, amount), pin=i))
            try:
                await asyncio.wait_for(asyncio.to_thread(server.proc.wait), 30)
                what = f"{label} crashed itself at {point}"
            except TimeoutError:  # this minigate has no such point: kill it anyway
                server.proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(server.proc.wait)
                what = f"{label} never reached {point} in 30 s; SIGKILLed"
        finally:
            server.extra_env = plain
        await self.restart(server, label)
        return what + ", restarted"

    async def timed_create(self, n: int, pin: int) -> None:
        order = await self.create_order(n, pin=pin)
        if order is not None and await self.pay(n, order):
            await self.wait_paid(order["id"])

    async def faults(self, plan: list[tuple[float, str]]) -> None:
        for number, (at, kind) in enumerate(plan, 1):
            await asyncio.sleep(max(0.0, self.t_start + at - time.monotonic()))
            self.stats.faults[kind] += 1
            try:
                what = await self.inject(kind)
            except Exception as exc:  # a fault the harness could not carry out
                self.say(f"fault {number}/{len(plan)} {kind} FAILED: {exc!r}")
                raise
            self.say(f"fault {number}/{len(plan)} {kind}: {what}")

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(self.plan.progress_every)
            s = self.stats
            other = sum(1 for e in s.server_errors if e["status"] != 503)
            self.say(f"flows {s.flows} (live {len(self.flows)}), orders {s.orders}, paid "
                     f"{s.paid}, refunds {s.refunds_sent} | faults {sum(s.faults.values())} | "
                     f"503 {s.status_503}, other 5xx {other}, conn errors "
                     f"{s.transport_errors}, 409 in flight {s.in_flight_409} | webhooks "
                     f"acked {sum(self.receiver.received.values())}, failed on purpose "
                     f"{self.receiver.failed_on_purpose}")

    # -- settling and the verdict ----------------------------------------------------------
    async def sql(self, query: str) -> list[Any]:
        import asyncpg  # type: ignore[import-untyped]

        assert self.db is not None
        conn = await asyncpg.connect(self.db.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    async def outstanding(self) -> dict[str, int]:
        """What the worker still has to do before the books can be compared."""
        ledger = (await self.http.get(f"{self.sandbox.base}/sandbox/_ledger")).json()
        sim_paid = {o["merchant_reference"] for o in ledger["latipay"] if o["status"] == "paid"}
        rows = await self.sql("""
            SELECT (SELECT count(*) FROM refunds WHERE status IN ('pending', 'unknown')) AS r,
                   (SELECT count(*) FROM events WHERE deliver = 1
                      AND delivery_status = 'pending') AS e,
                   (SELECT count(*) FROM orders WHERE status IN ('created', 'pending', 'unknown')
                      AND expires_at < now()) AS x""")
        paid_nos = {r[0] for r in await self.sql(
            "SELECT p.provider_order_no FROM payments p JOIN orders o ON o.id = p.order_id "
            "WHERE o.status IN ('paid', 'partially_refunded', 'refunded', 'paid_after_close')")}
        return {"refunds open": rows[0]["r"], "webhooks pending": rows[0]["e"],
                "expired orders open": rows[0]["x"],
                "paid at provider, not in minigate": len(sim_paid - paid_nos)}

    async def settle(self) -> None:
        self.receiver.fail_ratio = 0.0
        await self.receiver.up()
        deadline = time.monotonic() + self.plan.settle
        left: dict[str, int] = {}
        said = time.monotonic()
        while time.monotonic() < deadline:
            try:
                left = await self.outstanding()
            except (OSError, httpx.HTTPError) as exc:
                self.say(f"settling: {exc!r}")
            else:
                if not any(left.values()):
                    self.say("settled: nothing left to reconcile or deliver")
                    return
                if time.monotonic() - said >= 10:
                    said = time.monotonic()
                    self.say("settling: " + ", ".join(f"{k} {v}" for k, v in left.items() if v))
            await asyncio.sleep(2.0)
        self.say(f"settling bound reached ({self.plan.settle:.0f} s): {left}")

    async def facts(self) -> Facts:
        ledger = (await self.http.get(f"{self.sandbox.base}/sandbox/_ledger")).json()
        sim = [SimOrder(o["merchant_reference"], o["amount_minor"], o["status"],
                        o["refunded_minor"],
                        [(x["reference"], x["amount_minor"]) for x in o["refunds"]])
               for o in ledger["latipay"]]
        orders = [MgOrder(r["id"], r["merchant_reference"], r["amount_minor"], r["status"],
                          r["refunded_minor"], r["refund_reserved_minor"], r["provider_order_no"])
                  for r in await self.sql(
                      "SELECT o.*, p.provider_order_no FROM orders o "
                      "LEFT JOIN payments p ON p.order_id = o.id")]
        refunds = [MgRefund(r["id"], r["order_id"], r["provider_refund_no"], r["amount_minor"],
                            r["status"], r["reason"])
                   for r in await self.sql("SELECT * FROM refunds")]
        events = {r["id"]: r["type"] for r in await self.sql(
            "SELECT id, type FROM events WHERE deliver = 1")}
        return Facts(sim=sim, orders=orders, refunds=refunds, deliverable=events,
                     received=self.receiver.received,
                     bad_signatures=self.receiver.bad_signatures,
                     server_errors=self.stats.server_errors,
                     replay_mismatches=self.stats.replay_mismatches)

    def summary(self, facts: Facts, wall: float) -> str:
        s, r = self.stats, self.receiver
        refunded = sum(1 for x in facts.refunds if x.status == "succeeded")
        lines = [
            "| run | |", "|---|---|",
            f"| load / wall time | {self.plan.duration:.0f} s / {wall:.0f} s (seed "
            f"{self.plan.seed}) |",
            f"| faults | {sum(s.faults.values())}: "
            + ", ".join(f"{k} {n}" for k, n in sorted(s.faults.items())) + " |",
            f"| flows / orders / paid by the shopper | {s.flows} / {s.orders} / {s.paid} |",
            f"| orders left to expire | {s.expiring} |",
            f"| refund requests / succeeded at minigate | {s.refunds_sent} / {refunded} |",
            f"| provider orders / paid | {len(facts.sim)} / "
            f"{sum(1 for x in facts.sim if x.status == 'paid')} |",
            f"| 503 answers (retried) | {s.status_503} |",
            f"| 409 in flight (retried) | {s.in_flight_409} |",
            f"| connection errors / timeouts (retried) | {s.transport_errors} |",
            f"| calls given up after {self.plan.op_bound:.0f} s | "
            f"{sum(s.gave_up.values())} {dict(s.gave_up) or ''} |",
            f"| definitive refusals | {dict(s.definitive_refusals) or 0} |",
            "| timed faults, first attempt | "
            + (", ".join(f"{k} ×{n}" for k, n in sorted(s.timed_first.items())) or "–") + " |",
            f"| paid but not `paid` within 60 s (no refund tried) | {s.not_paid_in_time} |",
            f"| webhooks: attempts / acked / failed on purpose / endpoint downs | {r.attempts} / "
            f"{sum(r.received.values())} / {r.failed_on_purpose} / {r.downs} |",
        ]
        return "\n".join(lines)

    async def main(self) -> int:
        self.t_start = time.monotonic()
        await self.receiver.up()
        assert self.balancer is not None
        await self.balancer.up()
        plan = schedule(self.plan)
        self.say("faults planned: " + ", ".join(f"{kind}@{at:.0f}s" for at, kind in plan))
        tasks = [asyncio.create_task(self.faults(plan)), asyncio.create_task(self.progress())]
        try:
            await self.drive(self.t_start + self.plan.duration, tasks[0])
            await tasks[0]  # raises if a fault could not be carried out
            self.say(f"load stopped; waiting for {len(self.flows)} flows to get their answers")
            if self.flows:
                await asyncio.wait(set(self.flows), timeout=self.plan.op_bound + 60)
            self.say("settling: PostgreSQL and every process up, webhook endpoint healthy")
            await self.settle()
            facts = await self.facts()
        finally:
            for task in tasks:
                task.cancel()
            for task in list(self.flows):
                task.cancel()
            await self.receiver.down()
            await self.balancer.down()
            await self.http.aclose()
        rows = chaos_check.check(facts)
        print()
        print(self.summary(facts, time.monotonic() - self.t0))
        print()
        print(chaos_check.render(rows))
        failed = [row.name for row in rows if row.failed]
        print()
        print(f"RESULT: {'FAIL, ' + str(len(failed)) + ' invariant(s) violated' if failed else 'PASS'}"
              f" (logs in {self.tmp})")
        return 1 if failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of load with faults (default 900; 45 with --short)")
    parser.add_argument("--faults", type=int, default=None,
                        help=("how many faults (default 30; with --short one of each of the "
                              f"{len(FAULT_KINDS)} kinds), kinds in turn"))
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for the load and the fault plan (default: random)")
    parser.add_argument("--short", action="store_true",
                        help="about 2 minutes in all: 45 s of load, one fault of each kind (CI)")


def run(args: argparse.Namespace) -> int:
    if args.seed is None:
        args.seed = secrets.randbelow(10**6)
    soak = Soak(Plan.from_args(args))
    try:
        soak.setup()
        return asyncio.run(soak.main())
    finally:
        soak.teardown()
