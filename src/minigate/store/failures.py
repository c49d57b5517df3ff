"""One place that says whether an exception means "the database is unavailable right now".

Such a failure is transient: the transaction was rolled back (or never began), and the same
request sent again later may succeed. Callers turn it into their own retry signal — a 503
with ``Retry-After`` on the API, the provider's failure ack on a notification (the provider
sends it again), a backed-off pass in the job runner. Anything else is a bug or a schema
problem and stays an error.

The drivers raise these in several shapes, so the whole exception chain is inspected:

* SQLAlchemy wraps DBAPI errors (``DBAPIError`` with ``.orig``; ``connection_invalidated``
  for a connection that died mid-statement), and raises its own pool ``TimeoutError``;
* asyncpg raises plain ``OSError`` subclasses while connecting (``ConnectionRefusedError``,
  ``FileNotFoundError`` for a missing unix socket, ``socket.gaierror`` for a name that does
  not resolve, ``TimeoutError``), which SQLAlchemy passes through unwrapped, and its own
  classes for a server that is starting or shutting down, a connection that was closed, or
  a transaction that lost a serialization race or a deadlock;
* aiosqlite/sqlite3 raise ``OperationalError`` for a busy or unreadable file — but also for
  "no such table", which is a schema problem, not an outage.
"""

from __future__ import annotations

import socket

import asyncpg  # type: ignore[import-untyped]
import asyncpg.exceptions as apg  # type: ignore[import-untyped]
import sqlalchemy.exc as sa_exc

#: SQLSTATE classes and codes that mean "try again": connection exceptions (08…), operator
#: intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now),
#: insufficient resources (53…: too many connections, out of memory, disk full),
#: serialization failure (40001) and deadlock (40P01).
_RETRYABLE_SQLSTATE_PREFIXES = ("08", "53", "57P0")
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

#: sqlite3 OperationalError messages that describe the file, not the schema.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error",
                     "unable to open database file", "database or disk is full")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
    return seen


def _one(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # the pool had no connection to give in time / a connection was lost
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(exc, FileNotFoundError) and exc.filename is None:
        return True  # connect() to a unix socket that is not there (a file open names it)
    if isinstance(exc, apg.PostgresConnectionError | apg.CannotConnectNowError):
        return True
    if isinstance(exc, apg.InterfaceError) and "closed" in str(exc):
        return True  # "connection is closed" / "connection was closed in the middle…"
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state in _RETRYABLE_SQLSTATES or state.startswith(_RETRYABLE_SQLSTATE_PREFIXES)
    module = type(exc).__module__
    if type(exc).__name__ == "OperationalError" and module.startswith(("sqlite3", "aiosqlite")):
        return any(text in str(exc).lower() for text in _SQLITE_TRANSIENT)
    return False


def database_unavailable(exc: BaseException) -> bool:
    """True if ``exc`` (or anything it was raised from) says the database could not be
    reached or could not finish the transaction for a reason that may pass."""
    return any(_one(e) for e in _chain(exc))
