"""``python -m bench run [--quick] [--db sqlite|postgres|both] [--duration S] [--suite …]``.

Suites:

* ``core``: per database, minigate and the bare baseline side by side, each on a fresh
  database in its own process: notification and checkout at saturation (closed loop),
  ``--rounds`` times each, the two servers strictly alternating (m b m b …: every
  measured phase follows the other server's) so that each round's ratio comes from two
  phases measured back to back under the same conditions; then open loop at fractions of
  each server's median saturation, as many rounds, in the same order. Plus the crypto
  floor.
* ``workers``: PostgreSQL, minigate on 1 vs 2 API processes (two ports, load split).
* ``rows``: PostgreSQL, per-order cost with 10 k vs ``--rows`` (default 1 M) orders already
  in the database (bulk ``INSERT … SELECT generate_series``).
* ``soak`` (not in the default set): per database, one minigate process driven at a fixed
  moderate rate (checkout and notification together) for ``--soak-duration`` (600 s) while
  its RSS is sampled, to judge "RSS < 250 MB and flat".

``--provider`` takes a list (``latipay,wechatpay``) or ``all``: ``core`` and ``soak`` run for
each; ``workers`` and ``rows`` use the first one.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import queue
import shlex
import signal
import statistics
import subprocess
import sys
import time
import timeit
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench import report, soak, wxkeys
from bench import speed as core_speed
from bench.load import Spec, worker_main
from bench.providers import PROVIDERS, ProviderBench, parse_providers
from bench.servers import (
    Database,
    FlushProbe,
    Monitor,
    SandboxProcess,
    Server,
    activity_since,
    cpu_since,
    database_activity,
    database_cpu,
    workdir,
)
from bench.targets import OPS

SUITES = ("core", "workers", "rows", "soak")
DEFAULT_SUITES = "core,workers,rows"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmark and write bench/results/")
    run.add_argument("--quick", action="store_true",
                     help="short phases (5 s) and one open-loop point (50%% of saturation)")
    run.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    run.add_argument("--duration", type=float, default=None,
                     help="seconds per measured phase (default 15, 5 with --quick)")
    run.add_argument("--suite", default=DEFAULT_SUITES,
                     help=f"comma-separated subset of {','.join(SUITES)} "
                          f"(default {DEFAULT_SUITES})")
    run.add_argument("--provider", default="latipay",
                     help=f"comma-separated list of {','.join(PROVIDERS)}, or all")
    run.add_argument("--soak-duration", type=float, default=None,
                     help="seconds of the soak (default 600, 60 with --quick; --duration "
                          "when soak is the only suite)")
    run.add_argument("--soak-rate", type=float, default=20.0,
                     help="soak: checkouts/s and notifications/s, each (default 20)")
    run.add_argument("--soak-live", action="store_true",
                     help="soak minigate in live mode against a separate 'minigate sandbox' "
                          "process (Latipay only), so its RSS holds no simulator state")
    run.add_argument("--concurrency", type=int, default=32, help="closed-loop workers")
    run.add_argument("--rounds", type=int, default=2,
                     help="core: saturation phases per server and operation, minigate and "
                          "the baseline strictly alternating (m b m b …, so every measured "
                          "phase follows the other server's); a ratio is the geometric mean "
                          "of the rounds' ratios; the open-loop phases run as many rounds, "
                          "and a p99 ratio is their median (default 2)")
    run.add_argument("--rows", type=int, default=1_000_000,
                     help="orders already in the database for the large case of 'rows'")
    run.add_argument("--profile", action="store_true",
                     help="attach py-spy to each server (minigate and the baseline) during "
                          "its first core saturation phase")
    run.add_argument("--ops", default=",".join(OPS),
                     help="core: comma-separated subset of checkout,notification "
                          "(default both)")
    run.add_argument("--baseline-create", action="store_true",
                     help="core: the baseline's checkout also takes the merchant's create "
                          "request (POST /bare/orders, one INSERT; the checkout then reads "
                          "the order's amount back), as minigate's takes POST /v1/orders: "
                          "three requests on both sides. The checkout targets are then "
                          "judged against that baseline and say so; it is not the issue's")
    stm = sub.add_parser("statements", help="what a checkout's writes cost PostgreSQL, "
                                            "minigate's against the baseline's, without HTTP "
                                            "(bench/statements.py)")
    from bench.statements import add_arguments as statements_arguments

    statements_arguments(stm)
    rep = sub.add_parser("report", help="rewrite the .md/.png of an existing results JSON")
    rep.add_argument("json", type=Path)
    chaos = sub.add_parser("chaos", help="fault-injecting soak in live mode; exit 1 on any "
                                         "violated invariant (bench/chaos.py)")
    from bench.chaos import add_arguments

    add_arguments(chaos)
    args = parser.parse_args(argv)
    if args.command in ("report", "chaos", "statements"):
        return args
    args.suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    if not args.ops or set(args.ops) - set(OPS):
        parser.error(f"--ops: a comma-separated subset of {','.join(OPS)}")
    try:
        args.providers = parse_providers(args.provider)
    except ValueError as exc:
        parser.error(str(exc))
    if args.soak_live and args.providers != ["latipay"]:
        parser.error("--soak-live drives Latipay only: add --provider latipay")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    explicit_duration = args.duration
    if args.duration is None:
        args.duration = 5.0 if args.quick else 15.0
    if args.soak_duration is None:
        args.soak_duration = (explicit_duration if explicit_duration and args.suites == ["soak"]
                              else 60.0 if args.quick else 600.0)
    args.fractions = [0.5] if args.quick else [0.25, 0.5, 0.75]
    args.dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    return args


def _pause_all_but(target: str | None, servers: dict[str, list[Server]]) -> None:
    """SIGSTOP every server but ``target``'s (None: resume them all). The server not being
    measured must not run at all: left running, it went on with its own background work
    (minigate's job runner, the simulators) on the same two cores while the other was
    measured, and the second phase of every round came out up to twice as costly."""
    for name, group in servers.items():
        for server in group:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.pid, signal.SIGCONT if target in (None, name)
                        else signal.SIGSTOP)


#: minigate's settings in the core suite, which compares request handling. No shopper ever
#: pays a benchmark checkout, so 20 s after each one minigate's reconciler would ask the
#: provider about it (in production it asks only about payments not notified by then, and
#: the baseline asks about none). Measured on latipay/SQLite, that backlog (about 1,500
#: queries) doubled minigate's CPU per checkout in the open-loop phase, which was then not
#: at half load at all. The first query comes after the run instead, as it does for the
#: seeded orders (``Database.seed_pending``); the soak keeps the default schedule.
CORE_MINIGATE_ENV = {"MINIGATE_RECONCILE_SCHEDULE": "[3600]"}
CORE_NOTE = ("core: minigate's reconciler is configured to first query a payment an hour "
             "after it is created (MINIGATE_RECONCILE_SCHEDULE=[3600]): no benchmark "
             "checkout is ever paid, and querying each one 20 s later is work the baseline "
             "does not do (the soak keeps the default schedule)")


def add_note(notes: list[str], note: str) -> None:
    """Add ``note`` to the report's notes once (a provider's note would otherwise repeat
    for each database)."""
    if note not in notes:
        notes.append(note)


def saturation_order(rounds: int, targets: list[str]) -> list[tuple[int, str]]:
    """(round, server) of the saturation phases, in the order they run: the servers in
    ``targets`` order, every round. On this machine a phase measures slower when it follows
    the *other* server's phase than when it follows its own (the baseline: 5.5 against
    8.7–13.5 ms of CPU per checkout), so every measured phase must have the same kind of
    predecessor. The warm-ups before them run in ``targets`` order too, so the first
    phase also follows the other server's. (Rounds that alternated which server went
    first — m b, b m — gave the baseline a phase after its own in every second round,
    and minigate none: runs up to ``20261128T172435Z`` are biased against minigate.)"""
    return [(r, t) for r in range(max(1, rounds)) for t in targets]


#: Seconds of each server's first, unmeasured phase (8 workers): imports, pools, caches.
WARMUP = 1.0
#: Seconds run unmeasured after a switch from the other server, before a measured phase.
SWITCH_WARMUP = 2.0
#: Notifications per second the seeded pending orders are sized for (minigate reached
#: 4,200/s on SQLite here; the first sizing, at 2,500/s, ran out on a faster day).
NOTIFY_CEILING = 6000


@dataclass(frozen=True)
class Step:
    """One phase of :meth:`Bench._interleaved`: ``target`` runs for ``duration`` seconds
    (None: the run's ``--duration``); measured only if ``record``."""

    target: str
    duration: float | None = None
    record: bool = False
    round: int | None = None
    fraction: float | None = None
    concurrency: int | None = None


def phase_plan(rounds: int, targets: list[str], fractions: list[float],
               duration: float) -> list[Step]:
    """Every phase of one operation, in order: the warm-ups, the saturation rounds
    (:func:`saturation_order`), the open-loop phases; each measured phase after a
    switch warm-up of its own server.

    The server not running is stopped (:func:`_pause_all_but`), and a phase costs more
    when its server was stopped for longer before it (round 7, ``docs/performance.md``:
    up to 40 % more CPU per checkout after 7 s than after 3 s). So each measured phase
    follows the same thing: the other server's switch warm-up and a phase as long as a
    measured one. The first measured phase would otherwise follow only the other
    server's short warm-up: an unmeasured *settle* phase of that server makes up the
    difference."""
    steps = [Step(t, WARMUP, concurrency=8) for t in targets]
    order = saturation_order(rounds, targets)
    # The open-loop phases run as many rounds as the saturation phases, in the same
    # order: one 5-second phase's p99 is its few slowest requests, and a single stall of
    # either server (or of the machine) decided it (round 9, docs/performance.md).
    first = order[0][1]
    others = [t for t in targets if t != first]
    if others:  # the stop before the first measured phase, as long as before the others
        steps.append(Step(others[-1], SWITCH_WARMUP - WARMUP + duration))
    measured = ([Step(t, record=True, round=r) for r, t in order]
                + [Step(t, record=True, round=r, fraction=f)
                   for f in fractions for r, t in order])
    for step in measured:
        steps += [Step(step.target, SWITCH_WARMUP), step]
    return steps


def _activity() -> dict[str, float]:
    """:func:`bench.servers.database_activity`, or nothing if it cannot be read (the phase's
    other figures stand without it)."""
    try:
        return asyncio.run(database_activity())
    except (OSError, asyncpg.PostgresError) as exc:
        sys.stderr.write(f"  (PostgreSQL's WAL and checkpoint counters unreadable: {exc})\n")
        return {}


def profile_name(label: str, step: Step) -> str | None:
    """The name of the profile ``--profile`` records during ``step``, or None: each
    server's first measured saturation phase is profiled, minigate's as ``label`` (the
    name earlier runs used) and the baseline's as ``label-baseline``, so the two can be
    read side by side (what minigate does that the baseline does not)."""
    if step.round != 0 or step.fraction is not None or not step.record:
        return None
    return label if step.target == "minigate" else f"{label}-{step.target}"


def notification_pool(rounds: int, fractions: list[float], duration: float) -> int:
    """Pending orders to seed for one server's notifications in :func:`phase_plan`'s
    phases (its warm-ups and saturation rounds, and the open-loop phases at their fraction
    of saturation) at up to :data:`NOTIFY_CEILING` per second. A phase that runs out stops
    the run (:meth:`Bench._interleaved`): its figures would be wrong."""
    seconds = (WARMUP + rounds * (SWITCH_WARMUP + duration)
               + rounds * sum(SWITCH_WARMUP + f * duration for f in fractions))
    return int(NOTIFY_CEILING * seconds) + 3000


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.providers = [PROVIDERS[name] for name in args.providers]
        self.provider = self.providers[0]  # the one the workers and rows suites use
        self.tmp = workdir()
        # one set of WeChat Pay sandbox keys for every process (deleted at the end)
        self.keys_path = wxkeys.share(self.tmp)
        self.monitor = Monitor()
        # the disk's flush time, sampled for the whole run (a commit waits for a flush)
        self.flush = FlushProbe(self.tmp)
        # the core suite's measured server runs its event loop on one core, whose speed a
        # probe records for every phase (bench/speed.py: the VM's cores change speed)
        self.core_cpu = core_speed.server_cpu()
        self.speed = (core_speed.CoreSpeed(self.core_cpu, self.tmp)
                      if self.core_cpu is not None and "core" in args.suites else None)
        self.phases: list[dict[str, Any]] = []
        self.verification: list[str] = []
        self.notes: list[str] = []
        self.profiles: dict[str, Any] = {}
        self.soaks: list[dict[str, Any]] = []
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    # -- load processes ------------------------------------------------------------------
    @staticmethod
    def launch(spec: Spec) -> tuple[Any, Any]:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        proc = ctx.Process(target=worker_main, args=(spec, q), daemon=True)
        proc.start()
        return proc, q

    def collect(self, name: str, spec: Spec, proc: Any, q: Any,
                on_start: Any = None) -> dict[str, Any]:
        """Wait for one load process's result (``on_start`` runs when it starts timing)."""
        launched = time.perf_counter()
        tty = sys.stderr.isatty()
        while True:
            try:
                msg = q.get(timeout=1.0)
            except queue.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"{name}: load generator died (exit {proc.exitcode})") \
                        from None
                if time.perf_counter() - launched > spec.duration + 90:
                    proc.kill()
                    raise RuntimeError(f"{name}: load generator stopped answering") from None
                continue
            if msg[0] == "started" and on_start is not None:
                on_start()
            elif msg[0] == "progress" and tty:
                sys.stderr.write(f"\r  {name:<58} {msg[1]:>8} ok {msg[2]:>5} err")
                sys.stderr.flush()
            elif msg[0] == "result":
                proc.join(10)
                return dict(msg[1])
            elif msg[0] == "failed":
                raise RuntimeError(f"{name}: load generator failed: {msg[1]}")

    @staticmethod
    def phase_name(meta: dict[str, Any], spec: Spec) -> str:
        return (f"{meta['suite']}/{spec.provider}/{meta['db']}/{meta['server']}/{spec.op}/"
                f"{spec.mode}{'' if spec.mode == 'closed' else f'@{spec.rate:.0f}/s'}")

    # -- one measured phase --------------------------------------------------------------
    def phase(self, meta: dict[str, Any], spec: Spec, servers: list[Server],
              record: bool = True) -> dict[str, Any]:
        labels = [f"{s.kind}:{s.port}" for s in servers]
        name = ("" if record else "warm-up ") + self.phase_name(meta, spec)
        self.monitor.phase = name
        start: dict[str, float] = {}

        postgres = meta["db"] == "postgres"
        db_before: dict[int, float] = {}
        activity_before: dict[str, float] = {}

        def started() -> None:
            if postgres:
                activity_before.update(_activity())
                db_before.update(database_cpu())
            start.update(cpu=self.monitor.cpu(labels), t=time.perf_counter(),
                         steal=self.monitor.steal(), mono=time.monotonic())

        gcs_before = [s.full_collections() for s in servers]  # outside the measured window
        holds_before = [s.loop_holds() for s in servers]
        sqlite = meta["db"] == "sqlite"
        checkpoints_before = [s.sqlite_checkpoints() for s in servers] if sqlite else []
        proc, q = self.launch(spec)
        raw = self.collect(name, spec, proc, q, started)
        assert start, f"{name}: the load generator never reported its start"
        ended = time.monotonic()
        row = self.row(meta, spec, servers, raw, self.monitor.cpu(labels) - start["cpu"])
        # The database server's CPU in the same window (PostgreSQL only: SQLite's work is
        # inside the server process, and so already in its CPU).
        db_cpu = cpu_since(db_before, database_cpu()) if postgres else None
        row["db_cpu_ms_per_op"] = (round(1000 * db_cpu / row["ok"], 3)
                                   if db_cpu is not None and row["ok"] else None)
        if postgres:  # and what it wrote: WAL, and the checkpoints it ran into
            row |= activity_since(activity_before, _activity(), row["ok"])
        row["full_gcs"] = _difference(gcs_before, [s.full_collections() for s in servers])
        row |= self.flush.since(start["mono"])
        if spec.cpus and self.speed is not None:
            # the measured core's speed: the probe unit's mean CPU ms (bench/speed.py)
            row["core_cpu"] = self.speed.cpu
            row["core_speed_ms"] = self.speed.mean_ms(start["mono"], ended)
        # Times the servers' event loops were held over 25 and 100 ms: a p99 that jumps
        # with none of these points outside the server processes.
        holds = _pairs_during(holds_before, [s.loop_holds() for s in servers])
        row["loop_holds_25ms"], row["loop_holds_100ms"] = holds if holds else (None, None)
        if sqlite:  # minigate's WAL checkpoints: beside the writes, and on the write path
            checkpoints = _pairs_during(checkpoints_before,
                                        [s.sqlite_checkpoints() for s in servers])
            row["sqlite_checkpoints"], row["sqlite_checkpoints_write_path"] = (
                checkpoints if checkpoints else (None, None))
        # Time the machine's CPUs were running other guests (a shared host) during the
        # phase, as a percentage of the phase's CPU capacity: a phase measured while the
        # host was busy is slower for reasons that are not in this code.
        row["steal_pct"] = round(100 * (self.monitor.steal() - start["steal"])
                                 / ((time.perf_counter() - start["t"]) * (os.cpu_count() or 1)),
                                 1)
        self.print_row(name, row)
        if record:
            self.phases.append(row)
        return row

    def row(self, meta: dict[str, Any], spec: Spec, servers: list[Server], raw: dict[str, Any],
            cpu: float) -> dict[str, Any]:
        labels = [f"{s.kind}:{s.port}" for s in servers]
        summary = report.summarise(raw)
        row = meta | {"provider": spec.provider, "op": spec.op, "mode": spec.mode,
                      "rate": spec.rate, "concurrency": spec.concurrency,
                      "processes": len(servers)} | summary
        row["cpu_ms_per_op"] = round(1000 * cpu / summary["ok"], 3) if summary["ok"] else None
        row["server_cpu_pct"] = round(100 * cpu / raw["elapsed"], 1)
        row["rss_mb"] = round(sum(self.monitor.rss_mb(label) for label in labels), 1)
        row["notified"] = raw["notified"]
        row["pool_used"] = raw["pool_used"]
        return row

    @staticmethod
    def print_row(name: str, row: dict[str, Any]) -> None:
        end = "\r" if sys.stderr.isatty() else ""
        sys.stderr.write(
            f"{end}  {name:<58} {row['ok']:>8} ok {row['errors'] + row['dropped']:>5} "
            f"err  {row['throughput']:>8.1f}/s  p50 {row['p50_ms']:.1f} "
            f"p99 {row['p99_ms']:.1f} ms  cpu {row['cpu_ms_per_op']} ms/op"
            + (f"  db {row['db_cpu_ms_per_op']} ms/op" if row.get("db_cpu_ms_per_op") else "")
            + (f"  wal {row['wal_kb_per_op']} KB/op  checkpoints {row['checkpoints']} "
               f"({row['checkpoint_buffers']} buffers, sync {row['checkpoint_sync_ms']} ms)"
               if row.get("checkpoints") is not None else "")
            + (f"  checkpoints {row['sqlite_checkpoints']} beside, "
               f"{row['sqlite_checkpoints_write_path']} on the write path"
               if row.get("sqlite_checkpoints") is not None else "")
            + "\n")
        for sample in row["error_samples"][:2]:
            sys.stderr.write(f"      error: {sample}\n")

    def spec(self, op: str, servers: list[Server], provider: ProviderBench | None = None,
             **kw: Any) -> Spec:
        return Spec(op=op, target=servers[0].kind, bases=[s.base for s in servers],
                    api_keys=[s.api_key for s in servers],
                    provider=(provider or self.provider).name,
                    concurrency=kw.pop("concurrency", self.args.concurrency),
                    duration=kw.pop("duration", self.args.duration),
                    baseline_create=self.args.baseline_create, **kw)

    def pool_size(self) -> int:
        """For a server's warm-up and one measured phase (workers, rows)."""
        return notification_pool(1, [], self.args.duration)

    # -- servers ---------------------------------------------------------------------------
    def start(self, kind: str, db: Database, n: int = 1,
              live_sandbox: SandboxProcess | None = None,
              extra_env: dict[str, str] | None = None) -> list[Server]:
        servers = []
        for _ in range(n):
            server = Server(kind, db.url, self.tmp,
                            live_sandbox=live_sandbox.base if live_sandbox else "",
                            live_credentials=live_sandbox.credentials() if live_sandbox else None,
                            extra_env=dict(extra_env or {}))
            server.start()
            self.monitor.watch(f"{kind}:{server.port}", server.pid)
            servers.append(server)
        return servers

    def stop(self, servers: list[Server]) -> None:
        for s in servers:
            s.stop()
            self.monitor.unwatch(f"{s.kind}:{s.port}")

    def profile(self, servers: list[Server], name: str) -> subprocess.Popen[bytes] | None:
        if not self.args.profile:
            return None
        out = report.RESULTS / f"{self.stamp}-profile-{name}.txt"
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [str(spy), "record", "-p", str(servers[0].pid), "-d", str(int(self.args.duration)),
               "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking", "--gil"]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish_profile(self, spy: subprocess.Popen[bytes] | None, name: str) -> None:
        if spy is None:
            return
        spy.wait(30)
        out = report.RESULTS / f"{self.stamp}-profile-{name}.txt"
        if out.exists():
            self.profiles[name] = report.profile_summary(out) | {"file": out.name}

    # -- suites ----------------------------------------------------------------------------
    def seed(self, db: Database, p: ProviderBench, count: int) -> list[str]:
        if not p.notifies:
            return []  # nothing to notify: no pending orders needed
        return asyncio.run(db.seed_pending(p.name, p.channel, p.currency, p.amount_minor,
                                           p.seed_number, count))

    def core(self, p: ProviderBench, kind: str) -> None:
        """Both servers run side by side, each on its own database. The saturation phases
        alternate strictly between them (:func:`saturation_order`: a drift of the machine's
        speed during the run falls on both alike, and every measured phase follows the
        other server's), and each round's minigate ÷ baseline ratio is taken from two
        phases measured back to back. Then the open-loop phases, each at a
        fraction of its own server's median saturation."""
        if not p.notifies:
            add_note(self.notes, f"{p.name}: notification not applicable: {p.no_notification}")
        targets = ("minigate", "baseline")
        dbs = {t: Database(kind, self.tmp) for t in targets}
        servers: dict[str, list[Server]] = {}
        try:
            for t in targets:
                asyncio.run(dbs[t].create(minigate_schema=t == "minigate"))
            # the baseline needs no seeded orders: any number is accepted once
            pools = {"minigate": notification_pool(self.args.rounds, self.args.fractions,
                                                   self.args.duration),
                     "baseline": 10**8}
            ids = self.seed(dbs["minigate"], p, pools["minigate"])
            add_note(self.notes, CORE_NOTE)
            for t in targets:
                servers[t] = self.start(t, dbs[t], extra_env=CORE_MINIGATE_ENV
                                        if t == "minigate" else None)
            metas = {t: {"suite": "core", "db": kind, "server": t} for t in targets}
            notified = self._interleaved("notification", metas, servers, p, pools) \
                if p.notifies and "notification" in self.args.ops else []
            if "checkout" in self.args.ops:
                self._interleaved("checkout", metas, servers, p, pools)
            for t in targets:
                self.stop(servers.pop(t))
            if notified:
                self._verify(dbs["minigate"], ids, notified, f"{p.name} {kind}")
        finally:
            _pause_all_but(None, servers)  # a stopped process would not see its SIGTERM
            for group in servers.values():
                self.stop(group)
            for db in dbs.values():
                asyncio.run(db.drop())

    def _interleaved(self, op: str, metas: dict[str, dict[str, Any]],
                     servers: dict[str, list[Server]], p: ProviderBench,
                     pools: dict[str, int]) -> list[int]:
        """Warm-up, the alternating saturation rounds, then the open-loop phases; the
        indices of minigate's notified seeded orders."""
        cursor = dict.fromkeys(servers, 0)
        notified: list[int] = []
        saturation: dict[str, list[float]] = {t: [] for t in servers}
        label = f"{p.name}-{metas['minigate']['db']}-{op}"
        for step in phase_plan(self.args.rounds, list(servers), self.args.fractions,
                               self.args.duration):
            _pause_all_but(step.target, servers)
            meta = metas[step.target]
            kw: dict[str, Any] = {}
            if step.duration is not None:
                kw["duration"] = step.duration
            if step.concurrency is not None:
                kw["concurrency"] = step.concurrency
            if step.round is not None:
                meta = meta | {"round": step.round + 1}
            if step.fraction is not None:  # open loop at a fraction of its own saturation
                meta = meta | {"fraction": step.fraction}
                kw |= {"mode": "open", "rate": max(1.0, step.fraction * statistics.median(
                    saturation[step.target]))}
            if op == "notification":
                kw |= {"pool_start": cursor[step.target],
                       "pool_size": pools[step.target] - cursor[step.target]}
            if self.core_cpu is not None:  # its threads started since: free again
                for server in servers[step.target]:
                    core_speed.pin_event_loop(server.pid, self.core_cpu)
                kw["cpus"] = tuple(sorted(core_speed.other_cpus() or ()))
            name = profile_name(label, step)
            spy = self.profile(servers[step.target], name) if name else None
            row = self.phase(meta, self.spec(op, servers[step.target], p, **kw),
                             servers[step.target], step.record)
            if name:
                self.finish_profile(spy, name)
            if op == "notification":
                if row.get("pool_exhausted"):
                    raise RuntimeError(
                        f"{label}: the seeded pending orders ran out after "
                        f"{row['pool_used']} notifications ({row['throughput']:.0f}/s); "
                        "raise bench.cli.NOTIFY_CEILING")
                cursor[step.target] += row["pool_used"]
                if step.target == "minigate":
                    notified.extend(row["notified"])
            if step.round is not None and step.fraction is None:
                saturation[step.target].append(row["throughput"])
        _pause_all_but(None, servers)
        return notified

    def _verify(self, db: Database, ids: list[str], notified: list[int], scope: str) -> None:
        sample = sorted(set(notified))[::max(1, len(set(notified)) // 50)][:50]
        statuses = asyncio.run(db.order_statuses([ids[i] for i in sample]))
        paid = sum(1 for s in statuses.values() if s == "paid")
        self.verification.append(f"{scope}: {paid}/{len(sample)} sampled orders acked by "
                                 "minigate are `paid` in the database")

    def workers(self) -> None:
        for n in (1, 2):
            db = Database("postgres", self.tmp)
            asyncio.run(db.create())
            try:
                pool = self.pool_size()
                self.seed(db, self.provider, pool)
                servers = self.start("minigate", db, n)
                meta = {"suite": "workers", "db": "postgres", "server": "minigate"}
                try:
                    self.phase(meta, self.spec("checkout", servers, duration=1.0,
                                               concurrency=8), servers, record=False)
                    self.phase(meta, self.spec("checkout", servers), servers)
                    if self.provider.notifies:
                        self.phase(meta, self.spec("notification", servers, pool_size=pool),
                                   servers)
                finally:
                    self.stop(servers)
            finally:
                asyncio.run(db.drop())

    def rows(self) -> None:
        for history in (10_000, self.args.rows):
            db = Database("postgres", self.tmp)
            asyncio.run(db.create())
            try:
                sys.stderr.write(f"  rows: seeding {history:,} orders (+payments, events, "
                                 "notifications) with generate_series…\n")
                took = asyncio.run(db.seed_history(history))
                self.notes.append(f"rows: seeding {history:,} history orders with 1 payment, "
                                  f"2 events, 1 notification each took {took:.0f} s")
                pool = self.pool_size()
                self.seed(db, self.provider, pool)
                servers = self.start("minigate", db)
                meta = {"suite": "rows", "db": "postgres", "server": "minigate",
                        "history_rows": history}
                try:
                    self.phase(meta, self.spec("checkout", servers, duration=1.0,
                                               concurrency=8), servers, record=False)
                    self.phase(meta, self.spec("checkout", servers), servers)
                    if self.provider.notifies:
                        self.phase(meta, self.spec("notification", servers, pool_size=pool),
                                   servers)
                finally:
                    self.stop(servers)
            finally:
                asyncio.run(db.drop())

    def soak(self, p: ProviderBench, kind: str) -> None:
        """One minigate process at a fixed rate for ``--soak-duration``; RSS sampled."""
        db = Database(kind, self.tmp)
        asyncio.run(db.create())
        try:
            pool = int(self.args.soak_rate * self.args.soak_duration * 1.2) + 1000
            ids = self.seed(db, p, pool)
            sandbox = (SandboxProcess(self.tmp, public_latipay_key=True)
                       if self.args.soak_live else None)
            if sandbox is not None:
                sandbox.start()
            servers = self.start("minigate", db, live_sandbox=sandbox)
            meta = {"suite": "soak", "db": kind, "server": "minigate"}
            phase = f"soak/{p.name}/{kind}" + ("/live" if sandbox else "")
            try:
                rows, cpu = self._soak_load(meta, servers, p, pool, phase,
                                            sandbox.base if sandbox else "")
            finally:
                self.stop(servers)
                if sandbox is not None:
                    sandbox.stop()
            notified = [i for r in rows for i in r["notified"]]
            if notified:
                self._verify(db, ids, notified, f"{p.name} {kind} soak")
            summary = self._soak_summary(p, kind, servers[0], phase, rows, cpu)
            self.soaks.append(summary)
            r = summary["rss"]
            if r.get("samples"):
                sys.stderr.write(f"  {phase}: RSS {r['first_mb']} → {r['last_mb']} MB (max "
                                 f"{r['max_mb']}), second half {r['kb_per_min']:+.0f} KB/min\n")
        finally:
            asyncio.run(db.drop())

    def _soak_load(self, meta: dict[str, Any], servers: list[Server], p: ProviderBench,
                   pool: int, phase: str, wallet_base: str) -> tuple[list[dict[str, Any]], float]:
        """Checkout and notification load processes at the same time, open loop."""
        a, labels = self.args, [f"{s.kind}:{s.port}" for s in servers]
        ops = ["checkout"] + (["notification"] if p.notifies else [])
        specs = [self.spec(op, servers, p, mode="open", rate=a.soak_rate,
                           duration=a.soak_duration, pool_size=pool, wallet_base=wallet_base)
                 for op in ops]
        self.monitor.phase = phase
        sys.stderr.write(f"  {phase}: {' + '.join(ops)} at {a.soak_rate:g}/s each for "
                         f"{a.soak_duration:.0f} s\n")
        cpu0 = self.monitor.cpu(labels)
        running = [(spec, *self.launch(spec)) for spec in specs]
        raws = [self.collect(self.phase_name(meta, spec), spec, proc, q)
                for spec, proc, q in running]
        cpu = self.monitor.cpu(labels) - cpu0
        rows = []
        for spec, raw in zip(specs, raws, strict=True):
            row = self.row(meta, spec, servers, raw, 0.0)
            row["cpu_ms_per_op"] = row["server_cpu_pct"] = None  # shared: see the summary
            self.print_row(self.phase_name(meta, spec), row)
            self.phases.append(row)
            rows.append(row)
        return rows, cpu

    def _soak_summary(self, p: ProviderBench, kind: str, server: Server, phase: str,
                      rows: list[dict[str, Any]], cpu: float) -> dict[str, Any]:
        ok = sum(r["ok"] for r in rows)
        ops_per_s = ok / self.args.soak_duration
        trend = soak.summarise(self.monitor.rss, f"minigate:{server.port}", phase, ops_per_s)
        return {"provider": p.name, "db": kind, "duration_s": self.args.soak_duration,
                "mode": "live (separate sandbox process)" if self.args.soak_live else "sandbox",
                "rate_per_op": self.args.soak_rate, "ops": ok,
                "errors": sum(r["errors"] + r["dropped"] for r in rows),
                "cpu_ms_per_op": round(1000 * cpu / ok, 3) if ok else None, "rss": trend}

    def crypto_floor(self) -> list[dict[str, Any]]:
        """Each provider's signatures alone per operation, in-process (best of 3 runs)."""
        rows = []
        for p in self.providers:
            rows.append({"provider": p.name, "op": "checkout", "covers": p.floor_checkout,
                         "us_per_op": time_us(p.crypto_checkout),
                         "sim_us_per_op": time_us(p.crypto_checkout_sim)})
            rows.append({"provider": p.name, "op": "notification",
                         "covers": p.floor_notification or "not applicable",
                         "us_per_op": time_us(p.crypto_notification), "sim_us_per_op": None})
        return rows

    def run_suites(self) -> None:
        suites = self.args.suites
        for p in self.providers if "core" in suites else []:
            for kind in self.args.dbs:
                self.core(p, kind)
        if "workers" in suites:
            self.workers()
        if "rows" in suites:
            self.rows()
        for p in self.providers if "soak" in suites else []:
            for kind in self.args.dbs:
                self.soak(p, kind)

    def run(self) -> Path:
        started = time.time()
        a = self.args
        sys.stderr.write(f"minigate bench {self.stamp}: suites {','.join(a.suites)}, providers "
                         f"{','.join(a.providers)}, db {','.join(a.dbs)}, {a.duration:.0f} s/phase"
                         f"{f', soak {a.soak_duration:.0f} s' if 'soak' in a.suites else ''}"
                         f" (logs in {self.tmp})\n")
        crypto = self.crypto_floor()
        try:
            self.run_suites()
        finally:
            self.monitor.close()
            self.flush.close()
            if self.speed is not None:
                self.speed.close()
            self.keys_path.unlink(missing_ok=True)  # the logs stay, the keys go
        result = {
            "timestamp": self.stamp, "command": "python -m bench " + shlex.join(sys.argv[1:]),
            "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python "
                       f"{platform.python_version()}, load average at end "
                       f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
            "wall_s": round(time.time() - started, 1), "provider": self.provider.name,
            "providers": a.providers, "duration_s": a.duration, "phases": self.phases,
            "crypto_floor": crypto, "soaks": self.soaks, "verification": self.verification,
            "rss": report.rss_summary(self.monitor.rss), "rss_samples": self.monitor.rss,
            "profiles": self.profiles, "notes": self.notes,
            "baseline_create": a.baseline_create,
        }
        stem = report.write(result)  # adds ratios, CPU vs floor and targets (bench/targets.py)
        sys.stderr.write(f"wrote {stem}.json, .md, .png and bench/results/latest.md "
                         f"({result['wall_s']:.0f} s)\n")
        return stem


def time_us(fn: Any) -> float | None:
    """Best-of-3 µs per call of ``fn`` (None: nothing to time)."""
    if fn is None:
        return None
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return round(1e6 * min(timer.repeat(repeat=3, number=number)) / number, 2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "chaos":
        from bench import chaos

        return chaos.run(args)
    if args.command == "statements":
        from bench import statements

        return statements.main(args)
    if args.command == "report":
        import json

        stem = report.write(json.loads(args.json.read_text()), latest=False)
        sys.stderr.write(f"rewrote {stem}.md and .png\n")
        return 0
    Bench(args).run()
    return 0


def _pairs_during(before: list[tuple[int, int] | None], after: list[tuple[int, int] | None]
                  ) -> tuple[int, int] | None:
    """The growth of a pair of per-server counts during a phase (event-loop holds over 25
    and over 100 ms, say), or None if any server cannot say: :func:`_difference` of each."""
    over_25, over_100 = (_difference([None if h is None else h[i] for h in before],
                                     [None if h is None else h[i] for h in after])
                         for i in (0, 1))
    return None if over_25 is None or over_100 is None else (over_25, over_100)


def _difference(before: list[int | None], after: list[int | None]) -> int | None:
    """The growth of a per-server count during a phase (full collections, say), summed
    over the servers, or None if any server cannot say."""
    total = 0
    for was, now in zip(before, after, strict=True):
        if was is None or now is None:
            return None
        total += now - was
    return total
