"""Engines, sessions and migrations for SQLite (file, WAL) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

MIGRATIONS = Path(__file__).with_name("migrations")
POOL_RECYCLE_SECONDS = 1800
SQLITE_POOL_TIMEOUT = 30.0
#: How long a SQLite statement waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine. SQLite gets WAL, a busy timeout and foreign keys on every connection."""
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
        # while it holds it (checked out of this pool of one, so never concurrently), and
        # keeps it between its write batches until another checkout asks for it
        # (:class:`SqlitePool`).
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                        "check_same_thread": False},
                                     poolclass=SqlitePool, pool_size=1,
                                     max_overflow=0, pool_timeout=SQLITE_POOL_TIMEOUT,
                                     pool_reset_on_return=None)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine.pool, "reset", _sqlite_reset)
        return engine
    # No pre-ping (a round trip on every checkout): connections are recycled before servers
    # or proxies drop them, and a connection that died anyway fails its statement, which
    # surfaces as a retryable 503 and a rolled-back transaction.
    # No overflow: a connection beyond the pool would be closed as soon as it came back, and
    # under load that means one new PostgreSQL backend (fork, authentication, catalog
    # caches) every few requests: measured, it halved notification throughput. A request
    # waits for a pooled connection instead (the pool's timeout is a 503).
    # The pool lets the lean path (``store/hot.py``) keep a few idle connections between
    # its statements while nothing else waits for one (:class:`HeldPool`).
    return create_async_engine(url, poolclass=HeldPool, pool_size=pool_size, max_overflow=0,
                               pool_recycle=POOL_RECYCLE_SECONDS)


class HeldPool(AsyncAdaptedQueuePool):
    """A pool whose connections a holder may keep checked out while idle.

    The lean path (``store/hot.py``) runs its statements one unit of work after another;
    checking a connection out and back in for each costs 20-30 µs of the event loop's
    time (a greenlet, the pool's queue, the reset), three times per checkout. So it keeps
    idle connections between units, and registers in :attr:`holders`: every other
    checkout, and :meth:`dispose`, first calls it, and the holder gives back at once what
    it holds idle, and what it is using as soon as that unit ends (and keeps a connection
    after a unit only if no checkout is under way: :attr:`waiting`, so a checkout that
    lost a connection to the holder's next unit is not forgotten). Nothing waits longer
    than it did when every connection went back after every unit."""

    #: Log as the pool it extends (under ``sqlalchemy.``, which minigate keeps quiet).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Each is called before every checkout and before :meth:`dispose`: "give back
        #: the connections you hold".
        self.holders: set[Callable[[], None]] = set()
        #: Checkouts under way (waiting for a connection, or about to get one): a holder
        #: keeps a connection after its unit only while this is 0.
        self.waiting = 0

    def _do_get(self) -> ConnectionPoolEntry:
        self.waiting += 1
        try:
            self._ask_back()
            return super()._do_get()
        finally:
            self.waiting -= 1

    def dispose(self) -> None:
        self._ask_back()
        super().dispose()

    def _ask_back(self) -> None:
        for holder in list(self.holders):
            holder()


class SqlitePool(HeldPool):
    """SQLite's pool of one connection (:class:`HeldPool`): the lean path keeps it between
    its write batches, with a busy timeout of 0 while it does (``store/hot.py``)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
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
