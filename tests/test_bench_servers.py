"""The bench's reading of the database server's CPU (``DB CPU ms/op`` in its report) and of
its WAL and checkpoint counters, on the machine's real PostgreSQL. Nothing is timed: the
assertions are about which processes are counted and whether work done shows up."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bench.servers import (
    FlushProbe,
    activity_since,
    cpu_since,
    database_activity,
    database_cpu,
)


def test_cpu_since_counts_growth_and_new_processes() -> None:
    before = {10: 1.0, 11: 2.0, 12: 5.0}
    after = {10: 1.5, 11: 2.0, 13: 0.25}  # 12 ended (its share is lost); 13 is new
    assert cpu_since(before, after) == pytest.approx(0.75)
    assert cpu_since({}, {}) == 0


@pytest.mark.postgres
async def test_a_backend_s_work_shows_in_the_database_cpu(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        backend = conn.get_server_pid()
        if urlsplit(postgres_url).hostname not in ("127.0.0.1", "localhost", "::1"):
            pytest.skip("the PostgreSQL server is not on this machine: the bench reads no "
                        "DB CPU from it")
        before = database_cpu()
        assert backend in before  # this connection's backend process, by its name
        await conn.fetchval("SELECT count(*) FROM generate_series(1, 5000000)")
        after = database_cpu()
    finally:
        await conn.close()
    assert after[backend] > before[backend]  # the query's CPU, in this backend
    assert cpu_since(before, after) >= after[backend] - before[backend]


def test_activity_since_is_per_operation_and_says_nothing_without_a_reading() -> None:
    before = {"wal_bytes": 1000.0, "checkpoints": 7.0,
              "checkpoint_buffers": 100.0, "checkpoint_sync_ms": 5.0}
    after = {"wal_bytes": 1000.0 + 40 * 1024, "checkpoints": 8.0,
             "checkpoint_buffers": 350.0, "checkpoint_sync_ms": 17.5}
    assert activity_since(before, after, 4) == {
        "wal_kb_per_op": 10.0, "checkpoints": 1,
        "checkpoint_buffers": 250, "checkpoint_sync_ms": 12.5}
    assert set(activity_since({}, after, 4).values()) == {None}


@pytest.mark.postgres
async def test_writes_and_a_checkpoint_show_in_the_activity_counters(postgres_url: str) -> None:
    dsn = postgres_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    table = f"bench_activity_probe_{secrets.token_hex(4)}"
    try:
        await conn.execute(f"CREATE TABLE {table} (n int, pad text)")
        before = await database_activity(dsn)
        await conn.execute(f"INSERT INTO {table} SELECT n, repeat('x', 200) "  # noqa: S608
                           "FROM generate_series(1, 2000) n")
        await conn.execute("CHECKPOINT")  # ends a checkpoint, as a timed one would
        after = await database_activity(dsn)
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
    # 2,000 rows of over 200 bytes: at least 400 KB of WAL. A checkpoint's statistics are
    # reported when it ends.
    seen = activity_since(before, after, 1)
    assert seen["wal_kb_per_op"] is not None and seen["wal_kb_per_op"] > 400
    assert seen["checkpoints"] is not None and seen["checkpoints"] >= 1


def test_the_flush_probe_flushes_a_real_file_and_summarises_a_window(tmp_path: Path) -> None:
    probe = FlushProbe(tmp_path, interval=0.01)
    try:
        deadline = time.monotonic() + 10
        while len(probe.samples) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / "flush-probe.bin").stat().st_size == 8192
    finally:
        probe.close()
    assert not (tmp_path / "flush-probe.bin").exists()  # removed when closed
    assert probe.since(0.0)["flushes"] == len(probe.samples) >= 5
    # the summary, on known samples: a window counts what ended in it
    probe.samples = [(1.0, 0.002), (2.0, 0.030), (3.0, 0.120), (4.0, 0.004)]
    assert probe.since(1.5) == {"flushes": 3, "flushes_over_25ms": 2,
                                "longest_flush_ms": 120.0}
    assert probe.since(5.0) == {"flushes": 0, "flushes_over_25ms": 0, "longest_flush_ms": 0.0}
