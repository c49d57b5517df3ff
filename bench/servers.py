"""Databases, server processes and their CPU / RSS, all on loopback.

* :class:`Database` creates a fresh SQLite file or PostgreSQL database (``mg_bench_<random>``),
  migrates it, seeds pending orders (and, for the row-count test, history rows) and drops it.
* :class:`Server` starts ``minigate serve`` (sandbox mode, configured by ``MINIGATE_*``
  environment variables) or the bare baseline as a subprocess and waits for it to answer.
* :class:`Monitor` samples every server process's CPU seconds and RSS twice a second.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Table

if TYPE_CHECKING:
    from minigate.sandbox.keystore import SandboxCredentials

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("MINIGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Database:
    """A fresh database for one server run."""

    def __init__(self, kind: str, workdir: Path, pg_dsn: str = PG_DSN) -> None:
        self.kind = kind
        self.name = f"mg_bench_{secrets.token_hex(4)}"
        self.pg_dsn = pg_dsn  # the server's maintenance database (``…/postgres``)
        if kind == "sqlite":
            self.path = workdir / f"{self.name}.db"
            self.url = f"sqlite+aiosqlite:///{self.path}"
        else:
            base = pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            self.url = f"{base}/{self.name}"

    async def create(self, *, minigate_schema: bool = True) -> None:
        if self.kind == "postgres":
            import asyncpg  # type: ignore[import-untyped]

            conn = await asyncpg.connect(self.pg_dsn)
            try:
                await conn.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                await conn.close()
        if minigate_schema:
            from minigate.store.db import make_engine, migrate

            engine = make_engine(self.url)
            try:
                await migrate(engine)
            finally:
                await engine.dispose()

    async def drop(self) -> None:
        if self.kind == "sqlite":
            _remove_sqlite(self.path)
            return
        import asyncpg

        conn = await asyncpg.connect(self.pg_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def seed_pending(self, provider: str, channel: str, currency: str, minor: int,
                           number: Callable[[int], str], count: int, start: int = 0
                           ) -> list[str]:
        """``count`` orders in ``pending`` with a pending payment numbered ``number(i)``
        (as if checkout had happened); returns their order ids. ``next_check_at`` is far
        ahead so the reconciler leaves them alone during the run."""
        from minigate.domain.ids import new_id
        from minigate.service.context import token_hash
        from minigate.store.db import make_engine
        from minigate.store.models import Order, Payment

        now = datetime.now(UTC)
        later = now + timedelta(days=1)
        orders: list[dict[str, Any]] = []
        payments: list[dict[str, Any]] = []
        ids: list[str] = []
        hashed = token_hash("ct_bench")
        for i in range(start, start + count):
            oid = f"ord_b{i:019d}"
            ids.append(oid)
            orders.append(dict(
                id=oid, merchant_reference=f"bench-{i}", amount_minor=minor, currency=currency,
                description="bench", channel=channel, provider=provider, status="pending",
                client_token_hash=hashed, refunded_minor=0, refund_reserved_minor=0,
                metadata_json={}, flagged=0, expires_at=later, paid_at=None, created_at=now,
                updated_at=now, version=2))
            payments.append(dict(
                id=new_id("pay"), order_id=oid, provider=provider, provider_order_no=number(i),
                provider_txn_id=None, status="pending", openid="o" + "b" * 27,
                client_params={"wechat": {}}, params_expire_at=later, next_check_at=later,
                checks=0, created_at=now, updated_at=now))
        engine = make_engine(self.url)
        try:
            for lo in range(0, count, 5000):
                async with engine.begin() as conn:
                    await conn.execute(cast(Table, Order.__table__).insert(),
                                       orders[lo:lo + 5000])
                    await conn.execute(cast(Table, Payment.__table__).insert(),
                                       payments[lo:lo + 5000])
        finally:
            await engine.dispose()
        return ids

    async def seed_history(self, rows: int) -> float:
        """PostgreSQL only: ``rows`` paid orders, each with its payment and two events, with
        ``INSERT … SELECT generate_series`` (seconds taken is returned)."""
        import asyncpg

        started = time.perf_counter()
        conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(f"""
            INSERT INTO orders SELECT 'ord_h' || lpad(g::text, 19, '0'), 'hist-' || g, 1230,
              'NZD', 'history', 'wechat', 'latipay', 'paid', md5(g::text) || md5(g::text), 0, 0,
              '{{}}'::json, 0, now() - interval '1 day', now() - interval '1 day',
              now() - interval '1 day' - g * interval '1 second', now(), 2
            FROM generate_series(1, {rows}) g""")
            await conn.execute(f"""
            INSERT INTO payments SELECT 'pay_h' || lpad(g::text, 19, '0'),
              'ord_h' || lpad(g::text, 19, '0'), 'latipay', 'MGH' || lpad(g::text, 25, '0'),
              '2026' || lpad(g::text, 12, '0'), 'succeeded', 'o' || md5(g::text), '{{}}'::json,
              NULL, NULL, 1, now() - interval '1 day', now()
            FROM generate_series(1, {rows}) g""")
            await conn.execute(f"""
            INSERT INTO events (id, type, order_id, data, deliver, delivery_status, attempts,
              next_attempt_at, last_error, created_at)
            SELECT 'evt_h' || lpad(g::text, 19, '0') || t, CASE t WHEN 'c' THEN 'order.created'
              ELSE 'order.paid' END, 'ord_h' || lpad(g::text, 19, '0'), '{{}}'::json, 0, 'none',
              0, NULL, '', now() - interval '1 day'
            FROM generate_series(1, {rows}) g, (VALUES ('c'), ('p')) v(t)""")
            await conn.execute("""
            INSERT INTO notifications (provider, event_key, order_id, outcome, body, received_at)
            SELECT 'latipay', 'MGH' || lpad(g::text, 25, '0') || ':paid',
              'ord_h' || lpad(g::text, 19, '0'), 'paid', '\\x00'::bytea, now()
            FROM generate_series(1, $1::int) g""", rows)
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def order_statuses(self, ids: list[str]) -> dict[str, str]:
        from sqlalchemy import select

        from minigate.store.db import make_engine
        from minigate.store.models import Order

        engine = make_engine(self.url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(select(Order.id, Order.status).where(Order.id.in_(ids)))
                return {r[0]: r[1] for r in rows}
        finally:
            await engine.dispose()


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass
class Server:
    """One API process (minigate or baseline) on a free loopback port."""

    kind: str  # "minigate" | "baseline" | "worker" (``minigate worker``: jobs only, no port)
    db_url: str
    logdir: Path
    api_key: str = field(default_factory=lambda: "sk_bench_" + secrets.token_urlsafe(16))
    port: int = field(default_factory=free_port)
    #: the module run as ``python -m <entry> serve`` for minigate (experiments swap it)
    entry: str = "minigate.cli"
    extra_env: dict[str, str] = field(default_factory=dict)
    #: base URL of a separate ``minigate sandbox``: minigate then runs in live mode, with
    #: Latipay and WeChat login pointed there (so its RSS holds no simulator state)
    live_sandbox: str = ""
    #: that sandbox's credentials (:meth:`SandboxProcess.credentials`)
    live_credentials: SandboxCredentials | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def full_collections(self) -> int | None:
        """How many full (generation-2) collections the process's collector has run so
        far, or None where it cannot say: a worker (no port), minigate in live mode
        (``/metrics`` wants a token) or with several processes (multiprocess metrics
        carry no collector figures)."""
        if self.kind == "worker":
            return None
        try:
            if self.kind == "baseline":
                r = httpx.get(f"{self.base}/bare/gc", timeout=5)
                return int(r.json()["collections"][2]) if r.status_code == 200 else None
            r = httpx.get(f"{self.base}/metrics", timeout=5)
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            return None
        return full_collections(r.text) if r.status_code == 200 else None

    def loop_holds(self) -> tuple[int, int] | None:
        """How many times so far the process's event loop was held over 25 ms and over
        100 ms (:mod:`minigate.observability.looplag`, in both servers), or None where it
        cannot say (as :meth:`full_collections`)."""
        if self.kind == "worker":
            return None
        try:
            if self.kind == "baseline":
                r = httpx.get(f"{self.base}/bare/gc", timeout=5)
                if r.status_code != 200:
                    return None
                found = r.json()["loop_holds"]
                return int(found["0.025"]), int(found["0.1"])
            r = httpx.get(f"{self.base}/metrics", timeout=5)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
        return loop_holds(r.text) if r.status_code == 200 else None

    def sqlite_checkpoints(self) -> tuple[int, int] | None:
        """minigate's SQLite WAL checkpoints so far: (beside the writes, on the write path),
        from ``minigate_sqlite_checkpoints_total``; None for the baseline, a worker, or
        where ``/metrics`` cannot say (as :meth:`full_collections`)."""
        if self.kind != "minigate":
            return None
        try:
            r = httpx.get(f"{self.base}/metrics", timeout=5)
        except httpx.HTTPError:
            return None
        return sqlite_checkpoints(r.text) if r.status_code == 200 else None

    def start(self, timeout: float = 30.0) -> None:
        env = os.environ | {
            "MINIGATE_MODE": "sandbox", "MINIGATE_DATABASE_URL": self.db_url,
            "MINIGATE_API_KEY": self.api_key, "MINIGATE_PUBLIC_URL": self.base,
            "MINIGATE_SANDBOX__TIME_SCALE": "1.0", "PYTHONPATH": str(ROOT),
        } | (live_env(self.live_sandbox, self.live_credentials) if self.live_sandbox
             else {}) | self.extra_env
        if self.kind == "worker":  # no port: ready once it says so (unbuffered output)
            cmd = [sys.executable, "-m", "bench.mgserve", self.entry, "worker"]
            self.proc = spawn(cmd, env | {"PYTHONUNBUFFERED": "1"},
                              self.logdir / f"worker-{self.port}.log", "", "minigate worker",
                              timeout, ready_text="minigate worker running")
            return
        if self.kind == "minigate":
            # bench.mgserve runs ``python -m <entry> serve`` in-process with the run's
            # shared WeChat Pay sandbox keys (bench/wxkeys.py); nothing else changes.
            cmd = [sys.executable, "-m", "bench.mgserve", self.entry, "serve", "--host",
                   "127.0.0.1", "--port", str(self.port)]
        else:
            cmd = [sys.executable, "-m", "bench.baseline", "--port", str(self.port),
                   "--db", self.db_url]
        self.proc = spawn(cmd, env, self.logdir / f"{self.kind}-{self.port}.log",
                          f"{self.base}/healthz", self.kind, timeout)

    def stop(self) -> None:
        terminate(self.proc)


def spawn(cmd: list[str], env: dict[str, str], log_path: Path, ready_url: str, label: str,
          timeout: float, ready_text: str = "") -> subprocess.Popen[bytes]:
    """Start ``cmd`` (output appended to ``log_path``) and wait until ``ready_url`` answers
    200, or (``ready_text``) until that text appears in the output after the start."""
    log = open(log_path, "ab")  # noqa: SIM115 - appended: a restarted process keeps its story
    offset = log.tell()
    with log:  # the child has its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{label} exited at start; see {log.name}")
        if ready_text:
            with open(log_path, "rb") as out:
                out.seek(offset)
                if ready_text.encode() in out.read():
                    return proc
        else:
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"{label} was not ready ({ready_text or ready_url}) in {timeout:.0f}s")


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def live_env(sandbox: str, credentials: SandboxCredentials | None = None) -> dict[str, str]:
    """minigate in live mode with Latipay and jscode2session at a ``minigate sandbox``
    (whose secrets are ``credentials``; the public constants when None)."""
    from minigate.sandbox import credentials as cred

    return {
        "MINIGATE_MODE": "live", "MINIGATE_RUN_JOBS": "true",
        "MINIGATE_WECHAT_LOGIN__APPID": cred.MINI_APP_ID,
        "MINIGATE_WECHAT_LOGIN__SECRET": (credentials.mini_app_secret if credentials
                                          else cred.MINI_APP_SECRET),
        "MINIGATE_WECHAT_LOGIN__BASE_URL": f"{sandbox}/sandbox/wechat-login",
        "MINIGATE_LATIPAY__USER_ID": cred.LATIPAY_USER_ID,
        "MINIGATE_LATIPAY__WALLET_ID": cred.LATIPAY_WALLET_ID,
        "MINIGATE_LATIPAY__API_KEY": (credentials.latipay_api_key if credentials
                                      else cred.LATIPAY_API_KEY),
        "MINIGATE_LATIPAY__CURRENCY": cred.LATIPAY_CURRENCY,
        "MINIGATE_LATIPAY__BASE_URL": f"{sandbox}/sandbox/latipay",
    }


@dataclass
class SandboxProcess:
    """``minigate sandbox`` (the simulators alone) on a free loopback port."""

    logdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: Give the sandbox the public Latipay sandbox key (the other secrets stay its own):
    #: the memory soak's load generator forges Latipay notifications signed with that key,
    #: as the bench does against ``minigate serve``. Without it every notification of
    #: ``--soak-live`` was rejected (signature mismatch) and the soak measured none.
    public_latipay_key: bool = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def keys_dir(self) -> Path:
        return self.logdir / f"sandbox-keys-{self.port}"

    def credentials(self) -> SandboxCredentials:
        """The sandbox's secrets, kept in :attr:`keys_dir` (created by whichever of this
        process and the sandbox gets there first), for minigate's live settings."""
        from minigate.sandbox import keystore

        return keystore.load_or_create(self.keys_dir)

    def start(self, timeout: float = 30.0) -> None:
        if self.public_latipay_key:
            self._use_public_latipay_key()
        cmd = [sys.executable, "-m", "minigate.cli", "sandbox", "--port", str(self.port),
               "--keys-dir", str(self.keys_dir)]
        self.proc = spawn(cmd, os.environ | {"PYTHONPATH": str(ROOT)},
                          self.logdir / f"sandbox-{self.port}.log", f"{self.base}/openapi.json",
                          "minigate sandbox", timeout)

    def _use_public_latipay_key(self) -> None:
        from minigate.sandbox import credentials as cred

        self.credentials()  # creates the keys directory if it is not there yet
        path = self.keys_dir / "credentials.json"
        data = json.loads(path.read_text())
        data["latipay"]["api_key"] = cred.LATIPAY_API_KEY
        path.write_text(json.dumps(data, indent=2) + "\n")

    def stop(self) -> None:
        terminate(self.proc)


class Monitor:
    """CPU seconds (user+system) and RSS of a set of processes, sampled every 0.5 s."""

    def __init__(self, interval: float = 0.5) -> None:
        import psutil  # the "bench" extra

        self._psutil = psutil
        self.interval = interval
        self.procs: dict[str, psutil.Process] = {}
        self.rss: list[dict[str, object]] = []
        self.phase = "start"
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, label: str, pid: int) -> None:
        self.procs[label] = self._psutil.Process(pid)

    def unwatch(self, label: str) -> None:
        self.procs.pop(label, None)

    def cpu(self, labels: list[str]) -> float:
        total = 0.0
        for label in labels:
            t = self.procs[label].cpu_times()
            total += t.user + t.system
        return total

    def steal(self) -> float:
        """CPU seconds the hypervisor gave other guests instead of this machine, summed over
        its CPUs since boot (0 where the kernel does not count it)."""
        return float(getattr(self._psutil.cpu_times(), "steal", 0.0))

    def rss_mb(self, label: str) -> float:
        return float(self.procs[label].memory_info().rss) / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for label, proc in list(self.procs.items()):
                try:
                    rss = proc.memory_info().rss / 2**20
                except self._psutil.Error:
                    continue
                if rss == 0:  # exited, not yet reaped
                    continue
                self.rss.append({"t": round(time.monotonic() - self._t0, 2), "server": label,
                                 "phase": self.phase, "rss_mb": round(rss, 1)})

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class FlushProbe:
    """How long the disk takes to flush a small write, sampled every ``interval`` seconds
    for the whole run: an 8 KB write and ``fdatasync`` of a file in ``directory`` (put it
    on the database's file system). A PostgreSQL commit waits for such a flush of its WAL,
    so a phase in which a probe flush took 50 ms had commits that could wait as long.
    :meth:`since` gives, for a window, the flushes, those over 25 ms and the longest."""

    def __init__(self, directory: Path, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (monotonic end, seconds)
        self._path = directory / "flush-probe.bin"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        block = os.urandom(8192)
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.wait(self.interval):
                t0 = time.monotonic()
                os.pwrite(fd, block, 0)
                os.fdatasync(fd)
                t1 = time.monotonic()
                self.samples.append((t1, t1 - t0))
        finally:
            os.close(fd)
            self._path.unlink(missing_ok=True)

    def since(self, start: float) -> dict[str, float | int]:
        """The flushes that ended after ``start`` (``time.monotonic()``)."""
        seen = [dt for t, dt in self.samples if t >= start]
        return {"flushes": len(seen), "flushes_over_25ms": sum(1 for dt in seen if dt > 0.025),
                "longest_flush_ms": round(1000 * max(seen, default=0.0), 1)}

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="minigate-bench-"))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """A tiny helper for the synchronous orchestrator."""
    return asyncio.run(coro)


def database_cpu() -> dict[int, float]:
    """CPU seconds (user+system) of every PostgreSQL server process on this machine (the
    postmaster, its backends and its helpers, by process name), by pid. The servers under
    test share the machine's PostgreSQL, each with a database of its own, so the change
    over a phase is the database work that phase caused (:func:`cpu_since`)."""
    import psutil  # the "bench" extra

    found: dict[int, float] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.info["name"] == "postgres" and times is not None:
            found[proc.pid] = times.user + times.system
    return found


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two :func:`database_cpu` readings: each process's growth,
    all of it for a process that started in between (a new backend). A backend that ended
    in between is missing from ``after``, and so is its share (none of minigate's or the
    baseline's pooled connections closes during a phase)."""
    return sum(now - before.get(pid, 0.0) for pid, now in after.items())


#: The PostgreSQL counters read around each phase (:func:`database_activity`): the WAL
#: position (exact and immediate, where ``pg_stat_wal``'s counters reach the statistics only
#: when a backend reports them, up to seconds later), the checkpoints that ended, the buffers
#: the checkpointer wrote and the time its ``fsync`` phase took (reported by the
#: checkpointer as each checkpoint ends). PostgreSQL 17 moved the checkpointer's counters
#: from ``pg_stat_bgwriter`` to ``pg_stat_checkpointer`` under new names.
_ACTIVITY_SQL = {
    "wal": "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS wal_bytes",
    15: "SELECT (checkpoints_timed + checkpoints_req)::float8 AS checkpoints, "
        "buffers_checkpoint::float8 AS checkpoint_buffers, "
        "checkpoint_sync_time::float8 AS checkpoint_sync_ms FROM pg_stat_bgwriter",
    17: "SELECT (num_timed + num_requested)::float8 AS checkpoints, "
        "buffers_written::float8 AS checkpoint_buffers, "
        "sync_time::float8 AS checkpoint_sync_ms FROM pg_stat_checkpointer",
}


async def database_activity(dsn: str = PG_DSN) -> dict[str, float]:
    """PostgreSQL's cumulative WAL and checkpoint counters (:data:`_ACTIVITY_SQL`), read on a
    connection of its own that is closed again (so, read before :func:`database_cpu` at a
    phase's start and after it at the end, its backend's CPU is in neither reading). The
    counters are server-wide, like :func:`database_cpu`: during a phase only the measured
    server uses the database."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        version = int(await conn.fetchval("SHOW server_version_num"))
        found: dict[str, float] = {}
        for key in ("wal", 17 if version >= 170000 else 15):
            row = await conn.fetchrow(_ACTIVITY_SQL[key])
            found |= {k: float(v) for k, v in dict(row).items()}
        return found
    finally:
        await conn.close()


def activity_since(before: dict[str, float], after: dict[str, float], ops: int
                   ) -> dict[str, float | None]:
    """What a phase of ``ops`` operations wrote, from two :func:`database_activity`
    readings: WAL KB per operation, the checkpoints that ended in it,
    the buffers the checkpointer wrote and the milliseconds its ``fsync`` phase took (a
    commit waits behind that ``fsync`` on a shared disk). None where a reading is missing."""
    if not before or not after:
        return dict.fromkeys(("wal_kb_per_op", "checkpoints",
                              "checkpoint_buffers", "checkpoint_sync_ms"))

    def grew(key: str) -> float:
        return after[key] - before[key]

    return {"wal_kb_per_op": round(grew("wal_bytes") / 1024 / ops, 2) if ops else None,
            "checkpoints": int(grew("checkpoints")),
            "checkpoint_buffers": int(grew("checkpoint_buffers")),
            "checkpoint_sync_ms": round(grew("checkpoint_sync_ms"), 1)}


def _samples(metrics: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by name and labels (prometheus_client's
    own parser)."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples}


def loop_holds(metrics: str) -> tuple[int, int] | None:
    """Observations of ``minigate_event_loop_lag_seconds`` above 25 ms and above 100 ms in
    a Prometheus text exposition (the count minus the bucket at that bound), or None if it
    is not there."""
    found = _samples(metrics)
    name = "minigate_event_loop_lag_seconds"
    count = found.get((name + "_count", frozenset()))
    over = [found.get((name + "_bucket", frozenset({("le", bound)}))) for bound in ("0.025", "0.1")]
    if count is None or over[0] is None or over[1] is None:
        return None
    return int(count - over[0]), int(count - over[1])


def sqlite_checkpoints(metrics: str) -> tuple[int, int]:
    """``minigate_sqlite_checkpoints_total`` by where (beside the writes, on the write
    path) in a Prometheus text exposition; 0 where a series is not there yet."""
    found = _samples(metrics)
    beside, write_path = (found.get(("minigate_sqlite_checkpoints_total",
                                     frozenset({("where", where)})), 0.0)
                          for where in ("beside", "write_path"))
    return int(beside), int(write_path)


def full_collections(metrics: str) -> int | None:
    """Generation 2's count in a Prometheus text exposition (prometheus_client's
    ``python_gc_collections_total``), or None if it is not there."""
    value = _samples(metrics).get(("python_gc_collections_total",
                                   frozenset({("generation", "2")})))
    return None if value is None else int(value)
