"""``python -m bench run [--quick] [--db sqlite|postgres|both] [--duration S] [--suite …]``.

Suites:

* ``core``: per database, minigate and the bare baseline, each on a fresh database in its
  own process: checkout and notification at saturation (closed loop), then open loop at
  fractions of the measured saturation. Plus the crypto floor.
* ``workers``: PostgreSQL, minigate on 1 vs 2 API processes (two ports, load split).
* ``rows``: PostgreSQL, per-order cost with 10 k vs ``--rows`` (default 1 M) orders already
  in the database (bulk ``INSERT … SELECT generate_series``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import queue
import shlex
import subprocess
import sys
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.load import Spec, worker_main
from bench.providers import PROVIDERS
from bench.servers import Database, Monitor, Server, workdir

SUITES = ("core", "workers", "rows")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmark and write bench/results/")
    run.add_argument("--quick", action="store_true",
                     help="short phases (5 s) and one open-loop point (50%% of saturation)")
    run.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    run.add_argument("--duration", type=float, default=None,
                     help="seconds per measured phase (default 15, 5 with --quick)")
    run.add_argument("--suite", default="core,workers,rows",
                     help=f"comma-separated subset of {','.join(SUITES)}")
    run.add_argument("--provider", choices=sorted(PROVIDERS), default="latipay")
    run.add_argument("--concurrency", type=int, default=32, help="closed-loop workers")
    run.add_argument("--rows", type=int, default=1_000_000,
                     help="orders already in the database for the large case of 'rows'")
    run.add_argument("--profile", action="store_true",
                     help="attach py-spy to minigate during the core saturation phases")
    rep = sub.add_parser("report", help="rewrite the .md/.png of an existing results JSON")
    rep.add_argument("json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "report":
        return args
    args.suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    if args.duration is None:
        args.duration = 5.0 if args.quick else 15.0
    args.fractions = [0.5] if args.quick else [0.25, 0.5, 0.75]
    args.dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    return args


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.provider = PROVIDERS[args.provider]
        self.tmp = workdir()
        self.monitor = Monitor()
        self.phases: list[dict[str, Any]] = []
        self.verification: list[str] = []
        self.notes: list[str] = []
        self.profiles: dict[str, Any] = {}
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    # -- one measured phase --------------------------------------------------------------
    def phase(self, meta: dict[str, Any], spec: Spec, servers: list[Server],
              record: bool = True) -> dict[str, Any]:
        labels = [f"{s.kind}:{s.port}" for s in servers]
        name = (f"{meta['suite']}/{meta['db']}/{meta['server']}/{spec.op}/"
                f"{spec.mode}{'' if spec.mode == 'closed' else f'@{spec.rate:.0f}/s'}")
        if not record:
            name = "warm-up " + name
        self.monitor.phase = name
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        proc = ctx.Process(target=worker_main, args=(spec, q), daemon=True)
        proc.start()
        launched = time.perf_counter()
        cpu0 = t0 = None
        raw: dict[str, Any] | None = None
        tty = sys.stderr.isatty()
        while raw is None:
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
            if msg[0] == "started":
                cpu0, t0 = self.monitor.cpu(labels), time.perf_counter()
            elif msg[0] == "progress" and tty:
                sys.stderr.write(f"\r  {name:<58} {msg[1]:>8} ok {msg[2]:>5} err")
                sys.stderr.flush()
            elif msg[0] == "result":
                raw = msg[1]
            elif msg[0] == "failed":
                raise RuntimeError(f"{name}: load generator failed: {msg[1]}")
        cpu1 = self.monitor.cpu(labels)
        proc.join(10)
        assert cpu0 is not None and t0 is not None
        summary = report.summarise(raw)
        cpu = cpu1 - cpu0
        row = meta | {"op": spec.op, "mode": spec.mode, "rate": spec.rate,
                      "concurrency": spec.concurrency, "processes": len(servers)} | summary
        row["cpu_ms_per_op"] = round(1000 * cpu / summary["ok"], 3) if summary["ok"] else None
        row["server_cpu_pct"] = round(100 * cpu / raw["elapsed"], 1)
        row["rss_mb"] = round(sum(self.monitor.rss_mb(label) for label in labels), 1)
        row["notified"] = raw["notified"]
        row["pool_used"] = raw["pool_used"]
        end = "\r" if tty else ""
        sys.stderr.write(
            f"{end}  {name:<58} {summary['ok']:>8} ok {summary['errors'] + summary['dropped']:>5} "
            f"err  {summary['throughput']:>8.1f}/s  p50 {summary['p50_ms']:.1f} "
            f"p99 {summary['p99_ms']:.1f} ms  cpu {row['cpu_ms_per_op']} ms/op\n")
        for sample in summary["error_samples"][:2]:
            sys.stderr.write(f"      error: {sample}\n")
        if record:
            self.phases.append(row)
        return row

    def spec(self, op: str, servers: list[Server], **kw: Any) -> Spec:
        return Spec(op=op, target=servers[0].kind, bases=[s.base for s in servers],
                    api_keys=[s.api_key for s in servers], provider=self.provider.name,
                    concurrency=kw.pop("concurrency", self.args.concurrency),
                    duration=kw.pop("duration", self.args.duration), **kw)

    def pool_size(self, extra_phases: float) -> int:
        return int(2500 * self.args.duration * extra_phases) + 3000

    # -- servers ---------------------------------------------------------------------------
    def start(self, kind: str, db: Database, n: int = 1) -> list[Server]:
        servers = []
        for _ in range(n):
            server = Server(kind, db.url, self.tmp)
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
    def core(self, kind: str) -> None:
        fractions = self.args.fractions
        for target in ("minigate", "baseline"):
            db = Database(kind, self.tmp)
            asyncio.run(db.create(minigate_schema=target == "minigate"))
            try:
                # the baseline needs no seeded orders: any number is accepted once
                pool = self.pool_size(1 + sum(fractions)) if target == "minigate" else 10**8
                ids: list[str] = []
                if target == "minigate":
                    p = self.provider
                    ids = asyncio.run(db.seed_pending(p.name, p.channel, p.currency,
                                                      p.amount_minor, p.seed_number, pool))
                servers = self.start(target, db)
                meta = {"suite": "core", "db": kind, "server": target}
                try:
                    used = self._core_phases(meta, servers, pool, fractions)
                finally:
                    self.stop(servers)
                if target == "minigate":
                    self._verify(db, ids, used, kind)
            finally:
                asyncio.run(db.drop())

    def _core_phases(self, meta: dict[str, Any], servers: list[Server], pool: int,
                     fractions: list[float]) -> list[int]:
        # Notifications first: the seeded orders are never due for reconciliation, while
        # orders paid by checkout are queried by the reconciler 20 s later (as in production).
        warm = self.phase(meta, self.spec("notification", servers, duration=1.0, concurrency=8,
                                          pool_size=pool), servers, record=False)
        cursor, notified = warm["pool_used"], []
        spy = self.profile(servers, f"{meta['db']}-notification") \
            if meta["server"] == "minigate" else None
        row = self.phase(meta, self.spec("notification", servers, pool_start=cursor,
                                         pool_size=pool - cursor), servers)
        self.finish_profile(spy, f"{meta['db']}-notification")
        cursor += row["pool_used"]
        notified += row["notified"]
        sat_n = row["throughput"]
        for f in fractions:
            row = self.phase(meta | {"fraction": f},
                             self.spec("notification", servers, mode="open",
                                       rate=max(1.0, f * sat_n), pool_start=cursor,
                                       pool_size=pool - cursor), servers)
            cursor += row["pool_used"]
            notified += row["notified"]
        self.phase(meta, self.spec("checkout", servers, duration=1.0, concurrency=8), servers,
                   record=False)
        spy = self.profile(servers, f"{meta['db']}-checkout") if meta["server"] == "minigate" \
            else None
        sat = self.phase(meta, self.spec("checkout", servers), servers)
        self.finish_profile(spy, f"{meta['db']}-checkout")
        for f in fractions:
            self.phase(meta | {"fraction": f},
                       self.spec("checkout", servers, mode="open",
                                 rate=max(1.0, f * sat["throughput"])), servers)
        return notified

    def _verify(self, db: Database, ids: list[str], notified: list[int], kind: str) -> None:
        sample = sorted(set(notified))[::max(1, len(set(notified)) // 50)][:50]
        statuses = asyncio.run(db.order_statuses([ids[i] for i in sample]))
        paid = sum(1 for s in statuses.values() if s == "paid")
        self.verification.append(
            f"{kind}: {paid}/{len(sample)} sampled orders acked `sent` are `paid` in the database")

    def workers(self) -> None:
        for n in (1, 2):
            db = Database("postgres", self.tmp)
            asyncio.run(db.create())
            try:
                pool = self.pool_size(1)
                p = self.provider
                asyncio.run(db.seed_pending(p.name, p.channel, p.currency, p.amount_minor,
                                            p.seed_number, pool))
                servers = self.start("minigate", db, n)
                meta = {"suite": "workers", "db": "postgres", "server": "minigate"}
                try:
                    self.phase(meta, self.spec("checkout", servers, duration=1.0,
                                               concurrency=8), servers, record=False)
                    self.phase(meta, self.spec("checkout", servers), servers)
                    self.phase(meta, self.spec("notification", servers, pool_size=pool), servers)
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
                pool = self.pool_size(1)
                p = self.provider
                asyncio.run(db.seed_pending(p.name, p.channel, p.currency, p.amount_minor,
                                            p.seed_number, pool))
                servers = self.start("minigate", db)
                meta = {"suite": "rows", "db": "postgres", "server": "minigate",
                        "history_rows": history}
                try:
                    self.phase(meta, self.spec("checkout", servers, duration=1.0,
                                               concurrency=8), servers, record=False)
                    self.phase(meta, self.spec("checkout", servers), servers)
                    self.phase(meta, self.spec("notification", servers, pool_size=pool), servers)
                finally:
                    self.stop(servers)
            finally:
                asyncio.run(db.drop())

    def crypto_floor(self) -> list[dict[str, Any]]:
        rows = []
        for p in PROVIDERS.values():
            for op, fn in (("checkout", p.crypto_checkout), ("notification", p.crypto_notification)):
                n = 20000
                best = min(timeit.repeat(fn, number=n, repeat=3))
                rows.append({"provider": p.name, "op": op, "us_per_op": 1e6 * best / n})
        return rows

    def ratios(self) -> list[dict[str, Any]]:
        out = []
        core = [p for p in self.phases if p["suite"] == "core" and p["mode"] == "closed"]
        for db in self.args.dbs:
            for op in ("checkout", "notification"):
                m = [p for p in core if p["db"] == db and p["op"] == op and p["server"] == "minigate"]
                b = [p for p in core if p["db"] == db and p["op"] == op and p["server"] == "baseline"]
                if m and b and b[0]["throughput"]:
                    out.append({"db": db, "op": op, "minigate": m[0]["throughput"],
                                "baseline": b[0]["throughput"],
                                "ratio": m[0]["throughput"] / b[0]["throughput"],
                                "minigate_cpu_ms": m[0]["cpu_ms_per_op"],
                                "baseline_cpu_ms": b[0]["cpu_ms_per_op"]})
        return out

    def run(self) -> Path:
        started = time.time()
        sys.stderr.write(f"minigate bench {self.stamp}: suites {','.join(self.args.suites)}, "
                         f"db {','.join(self.args.dbs)}, {self.args.duration:.0f} s/phase "
                         f"(logs in {self.tmp})\n")
        crypto = self.crypto_floor()
        try:
            if "core" in self.args.suites:
                for kind in self.args.dbs:
                    self.core(kind)
            if "workers" in self.args.suites:
                self.workers()
            if "rows" in self.args.suites:
                self.rows()
        finally:
            self.monitor.close()
        result = {
            "timestamp": self.stamp, "command": "python -m bench " + shlex.join(sys.argv[1:]),
            "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python "
                       f"{platform.python_version()}, load average at end "
                       f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
            "wall_s": round(time.time() - started, 1), "provider": self.provider.name,
            "duration_s": self.args.duration, "phases": self.phases, "ratios": self.ratios(),
            "crypto_floor": crypto, "verification": self.verification,
            "rss": report.rss_summary(self.monitor.rss), "rss_samples": self.monitor.rss,
            "profiles": self.profiles, "notes": self.notes,
        }
        stem = report.write(result)
        sys.stderr.write(f"wrote {stem}.json, .md, .png and bench/results/latest.md "
                         f"({result['wall_s']:.0f} s)\n")
        return stem


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "report":
        import json

        stem = report.write(json.loads(args.json.read_text()), latest=False)
        sys.stderr.write(f"rewrote {stem}.md and .png\n")
        return 0
    Bench(args).run()
    return 0
