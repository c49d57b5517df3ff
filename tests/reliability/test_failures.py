"""Which exceptions mean "the database is unavailable" (retry) and which are bugs (500)."""

from __future__ import annotations

import socket
import sqlite3

import asyncpg.exceptions as apg
import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from minigate.store.failures import database_unavailable


def _raised_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except Exception as exc:
        return exc


UNAVAILABLE = [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    FileNotFoundError(2, "No such file or directory"),  # connect() to a missing unix socket
    socket.gaierror(-2, "Name or service not known"),
    TimeoutError(),
    apg.CannotConnectNowError("the database system is starting up"),
    apg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    apg.AdminShutdownError("terminating connection due to administrator command"),
    apg.SerializationError("could not serialize access"),
    apg.DeadlockDetectedError("deadlock detected"),
    apg.TooManyConnectionsError("sorry, too many clients already"),
    apg.InterfaceError("connection is closed"),
    PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    OperationalError("SELECT 1", {}, ConnectionError("server closed the connection")),
    OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
    InterfaceError("SELECT 1", {}, Exception("x"), connection_invalidated=True),
    _raised_from(RuntimeError("wrapped"), ConnectionRefusedError(111, "refused")),
]

NOT_UNAVAILABLE = [
    ValueError("bug"),
    KeyError("bug"),
    FileNotFoundError(2, "No such file or directory", "/etc/minigate/key.pem"),
    IntegrityError("INSERT", {}, Exception("duplicate key")),
    ProgrammingError("SELECT", {}, Exception("syntax error")),
    OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: orders")),
    apg.UndefinedTableError('relation "orders" does not exist'),
    apg.UniqueViolationError("duplicate key value"),
    apg.InterfaceError("the number of query arguments cannot exceed 32767"),
]


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_outages_are_retryable(exc: BaseException) -> None:
    assert database_unavailable(exc)


@pytest.mark.parametrize("exc", NOT_UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_bugs_and_schema_problems_are_not(exc: BaseException) -> None:
    assert not database_unavailable(exc)
