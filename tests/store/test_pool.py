"""The PostgreSQL pool keeps its connections: no overflow connection is opened under load
and closed again when it comes back (each one a new server backend)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, text

from minigate.config import load_settings
from minigate.store.db import make_engine


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite: one, always
async def test_busy_pool_makes_requests_wait_instead_of_opening_connections(
    database_url: str,
) -> None:
    engine = make_engine(database_url, pool_size=2)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))
    running = 0
    most = 0

    async def request() -> None:
        nonlocal running, most
        async with engine.connect() as conn:
            running += 1
            most = max(most, running)
            await conn.execute(text("SELECT pg_sleep(0.05)"))
            running -= 1

    try:
        for _ in range(3):  # three waves of eight concurrent requests
            await asyncio.gather(*(request() for _ in range(8)))
        assert most == 2 and len(opened) == 2
    finally:
        await engine.dispose()


def test_pool_size_is_a_bounded_setting() -> None:
    assert load_settings(database_pool_size=25).database_pool_size == 25
    with pytest.raises(ValueError, match="database_pool_size"):
        load_settings(database_pool_size=0)
