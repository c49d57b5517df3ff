"""What is checked before minigate starts, and what ``minigate check`` reports.

Every check gives one sentence that says what to change, never a traceback: a mistake in
the configuration or the database is the operator's to fix, and they should not have to
read a stack to find out which.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import sqlite3
from dataclasses import dataclass, field

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from minigate.config import ConfigError, Settings, masked_url
from minigate.store.db import alembic_config, make_engine, migrate

#: How long a start or a check waits for the database to answer.
CONNECT_TIMEOUT = 10.0


class StartRefused(ConfigError):
    """minigate will not start (or migrate) as configured; the message says what to do."""


def describe_database_error(exc: BaseException, url: str) -> str:
    """One line for an exception met while connecting to ``url``, saying what to fix."""
    parsed = make_url(url)
    where = (f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
             if parsed.drivername.startswith("postgresql") else str(parsed.database))
    cause: BaseException | None = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig.__cause__ or exc.orig
    name = type(cause).__name__
    text_ = str(cause)
    if name == "InvalidPasswordError":
        return (f"PostgreSQL at {where} refused the password for user {parsed.username!r}: "
                "fix the password in database_url")
    if name == "InvalidAuthorizationSpecificationError":
        return (f"PostgreSQL at {where} has no user {parsed.username!r}: create it or fix "
                "the user in database_url")
    if name == "InvalidCatalogNameError":
        return (f"PostgreSQL at {where} has no database {parsed.database!r}: create it "
                f"(createdb {parsed.database}) or fix the name in database_url")
    if isinstance(cause, socket.gaierror):
        return f"the database host {parsed.host!r} does not resolve: fix the host in database_url"
    if isinstance(cause, ConnectionRefusedError):
        return (f"nothing accepts connections at {where}: start PostgreSQL there or fix the "
                "host and port in database_url")
    if isinstance(cause, TimeoutError):
        return (f"the database at {where} did not answer within {CONNECT_TIMEOUT:.0f} s: "
                "check the host, port and firewall in database_url")
    if "unable to open database file" in text_ or "readonly database" in text_:
        return (f"cannot open the SQLite file {parsed.database}: its directory must exist "
                "and be writable by minigate (or fix the path in database_url)")
    if isinstance(cause, OSError):
        return f"cannot reach the database at {where} ({cause.strerror or name}): check database_url"
    return f"the database at {masked_url(url)} failed: {name}: {text_[:200]}"


@dataclass
class SchemaState:
    """Where a database stands against the migrations this minigate carries."""

    current: tuple[str, ...]
    head: tuple[str, ...]
    pending: list[str] = field(default_factory=list)

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.head)


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migrations this minigate carries (read once: /readyz and /metrics ask often)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> tuple[str, ...]:
    return tuple(_scripts().get_heads())


def _pending(current: tuple[str, ...]) -> list[str]:
    """Revisions that ``upgrade head`` would apply, oldest first."""
    script = _scripts()
    revisions = script.iterate_revisions("heads", current[0] if len(current) == 1 else
                                         (current or "base"))
    return [rev.revision for rev in reversed(list(revisions))]


async def schema_state(engine: AsyncEngine) -> SchemaState:
    def read(connection: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as conn:
        current = await conn.run_sync(read)
    return SchemaState(current, head_revisions(), _pending(current))


def _open_sqlite_file(url: str) -> None:
    """Open an SQLite database file with the standard library's driver, and close it.

    When aiosqlite (0.22) cannot open a file, it stops its worker thread without waiting,
    and the thread then posts to the event loop; minigate refuses to start and closes the
    loop first, so the thread printed "Exception in thread … Event loop is closed" under
    the one-line refusal, now and then. Opening the file first refuses before any thread
    exists. (Creating a missing file is what the engine would do next anyway.)"""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" \
            or path.startswith("file:") or parsed.query:
        return
    sqlite3.connect(path).close()


async def connect(url: str) -> AsyncEngine:
    """An engine whose database answered ``SELECT 1``; :class:`StartRefused` otherwise."""
    try:
        _open_sqlite_file(url)
    except sqlite3.Error as exc:
        raise StartRefused(describe_database_error(exc, url)) from None
    engine = make_engine(url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except (OSError, DBAPIError, TimeoutError) as exc:
        await engine.dispose()
        raise StartRefused(describe_database_error(exc, url)) from None
    return engine


async def migrate_database(url: str) -> tuple[list[str], SchemaState]:
    """Apply every pending migration; the revisions applied and the state after."""
    engine = await connect(url)
    try:
        before = await schema_state(engine)
        try:
            await migrate(engine)
        except (OSError, DBAPIError) as exc:
            raise StartRefused(describe_database_error(exc, url)) from None
        return before.pending, await schema_state(engine)
    finally:
        await engine.dispose()


def start_problems(settings: Settings) -> list[str]:
    """What stops a live minigate from starting, before anything is connected."""
    from minigate.jobs.destination import UnsafeDestination, check_url
    from minigate.jobs.runner import webhook_loopback_allowed

    problems = []
    if settings.webhook_url:
        try:
            check_url(settings.webhook_url, require_https=not settings.sandbox_mode,
                      allow_loopback=webhook_loopback_allowed(settings))
        except UnsafeDestination as exc:
            problems.append(f"webhook_url: {exc.message}")
    if settings.sandbox_mode:
        return problems
    if settings.api_key is None:
        problems.append("live mode needs a merchant API key: set MINIGATE_API_KEY")
    if not settings.any_provider_configured():
        problems.append("live mode with no provider configured: give one provider's "
                        "credentials (e.g. [latipay] user_id, wallet_id, api_key) or run "
                        "with mode = \"sandbox\"")
    return problems


async def prepare(settings: Settings) -> list[str]:
    """Before serving: the database answers, and its schema is at head (sandbox mode
    migrates it; live mode refuses). Returns the revisions applied (sandbox)."""
    problems = start_problems(settings)
    if problems:
        raise StartRefused("; ".join(problems))
    if settings.sandbox_mode:
        applied, _ = await migrate_database(settings.database_url)
        return applied
    engine = await connect(settings.database_url)
    try:
        state = await schema_state(engine)
    finally:
        await engine.dispose()
    if not state.at_head:
        have = ", ".join(state.current) or "no schema"
        raise StartRefused(f"the database is at {have}, not at {', '.join(state.head)}: "
                           "run minigate migrate (with the same configuration) first")
    return []
