"""Engines, sessions and migrations for SQLite (file, WAL) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

MIGRATIONS = Path(__file__).with_name("migrations")
POOL_RECYCLE_SECONDS = 1800
SQLITE_POOL_TIMEOUT = 30.0
#: How long a SQLite statement waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_file(url: str | URL) -> str | None:
    """A SQLite URL's database file, or None for an in-memory database or a URI filename
    (each connection would open a database of its own, or a file given by its query)."""
    url = make_url(url)
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:") or url.query:
        return None
    return name


def make_engine(url: str, *, pool_size: int = 10,
                background_checkpoints: bool = False) -> AsyncEngine:
    """An async engine. SQLite gets WAL, a busy timeout and foreign keys on every connection.

    ``background_checkpoints`` (SQLite file): the connection never checkpoints the WAL itself
    (``wal_autocheckpoint=0``); the caller runs :meth:`minigate.store.hot.HotStore.
    start_checkpoints` instead, which does it on a thread of its own. Otherwise the commit
    that crosses 1,000 WAL pages copies them into the database file and syncs it — several
    milliseconds, on the event loop's thread for the lean path's commits."""
    if is_sqlite(url):
        # One connection: SQLite has one writer at a time anyway, and a pool of connections
        # only turns that into lock waits inside SQLite's busy handler (long sleeps, a long
        # tail). One connection queues transactions in order instead. Code must therefore
        # never open a session while holding another (it would wait for itself). (The lean
        # path's lone reads use a read-only connection of their own: ``store/hot.py``.)
        # The pool's reset is ours (``_sqlite_reset``): a rollback only when a transaction
        # is open, so a connection that comes back idle costs no thread hand-off (the hot
        # path, ``store/hot.py``, returns it that way). ``check_same_thread=False``: the hot
        # path runs its transactions on the event loop's thread, on this same connection,
        # while it holds it (checked out of this pool of one, so never concurrently).
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                        "check_same_thread": False},
                                     pool_size=1,
                                     max_overflow=0, pool_timeout=SQLITE_POOL_TIMEOUT,
                                     pool_reset_on_return=None)
        background = background_checkpoints and sqlite_file(url) is not None
        event.listen(engine.sync_engine, "connect",
                     _sqlite_pragmas_background if background else _sqlite_pragmas)
        event.listen(engine.sync_engine.pool, "reset", _sqlite_reset)
        return engine
    # No pre-ping (a round trip on every checkout): connections are recycled before servers
    # or proxies drop them, and a connection that died anyway fails its statement, which
    # surfaces as a retryable 503 and a rolled-back transaction.
    # No overflow: a connection beyond the pool would be closed as soon as it came back, and
    # under load that means one new PostgreSQL backend (fork, authentication, catalog
    # caches) every few requests: measured, it halved notification throughput. A request
    # waits for a pooled connection instead (the pool's timeout is a 503).
    return create_async_engine(url, pool_size=pool_size, max_overflow=0,
                               pool_recycle=POOL_RECYCLE_SECONDS)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_pragmas_background(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # HotStore.start_checkpoints does it
    cursor.close()


def _sqlite_reset(dbapi_connection: Any, _record: Any, state: Any) -> None:
    if state.terminate_only or state.transaction_was_reset:
        return
    if dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` on ``engine``'s database."""

    def upgrade(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
