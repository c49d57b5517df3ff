"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from minigate.store.db import make_engine, migrate
from minigate.store.models import Base


async def test_migrated_schema_equals_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        await migrate(engine)

        def diff(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_upgrading_an_existing_database_keeps_its_orders(sqlite_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(sqlite_url)
    try:
        await migrate(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO orders VALUES ('ord_1', 'r', 100, 'NZD', 'd', 'wechat', 'latipay',"
                " 'pending', 'h', 0, 0, '{}', 0, '2026-01-01 00:00:00', NULL,"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)"))
        await migrate(engine)
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT id, close_after FROM orders"))).one()
        assert tuple(row) == ("ord_1", None)
    finally:
        await engine.dispose()
