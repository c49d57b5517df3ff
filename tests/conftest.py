"""Shared fixtures: a database per test on SQLite (file) and PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.support import Harness, harness_settings, postgres_required, start_harness

PG_HOST = os.environ.get("MINIGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MINIGATE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MINIGATE_TEST_PG_USER", "postgres")
FIXTURES = Path(__file__).parent / "fixtures"

_pg_checked: bool | None = None


async def _pg_available() -> bool:
    global _pg_checked
    if _pg_checked is None:
        try:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER,
                                         database="postgres", timeout=3)
            await conn.close()
            _pg_checked = True
        except (OSError, asyncpg.PostgresError):
            _pg_checked = False
    return _pg_checked


async def _pg_database() -> tuple[str, str]:
    if not await _pg_available():
        reason = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} (user {PG_USER})"
        if postgres_required():
            pytest.fail(f"MINIGATE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(f"SKIPPING PostgreSQL test: {reason}; set MINIGATE_REQUIRE_POSTGRES=1 to fail")
    name = "mg_test_" + secrets.token_hex(6)
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name, f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def _drop_pg(name: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'minigate.db'}"
        return
    name, url = await _pg_database()
    try:
        yield url
    finally:
        await _drop_pg(name)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, for what only PostgreSQL has (mark the test
    ``postgres``)."""
    name, url = await _pg_database()
    try:
        yield url
    finally:
        await _drop_pg(name)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'minigate.db'}"


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[Harness]:
    """minigate in sandbox mode, in-process, on each database."""
    harness = await start_harness(harness_settings(database_url))
    try:
        yield harness
    finally:
        await harness.api.aclose()
        await harness.runtime.stop()


@pytest.fixture
async def sqlite_gateway(sqlite_url: str) -> AsyncIterator[Harness]:
    """minigate in sandbox mode on SQLite only (for tests that are not about storage)."""
    harness = await start_harness(harness_settings(sqlite_url))
    try:
        yield harness
    finally:
        await harness.api.aclose()
        await harness.runtime.stop()


@pytest.fixture
async def gateway_with_jobs(database_url: str) -> AsyncIterator[Harness]:
    """Like ``gateway``, with the job runner on (reconciliation, untrusted-webhook queries)."""
    harness = await start_harness(harness_settings(database_url), run_jobs=True)
    try:
        yield harness
    finally:
        await harness.api.aclose()
        await harness.runtime.stop()
