"""The bench's reading of the database server's CPU (``DB CPU ms/op`` in its report), on
the machine's real PostgreSQL. Nothing is timed: the assertions are about which processes
are counted and whether work done by one of them shows up."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg
import pytest

from bench.servers import cpu_since, database_cpu


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
