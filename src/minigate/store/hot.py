"""The hot path's statements: notification intake, ``pay`` and order creation.

These run for every order, so they skip the ORM's unit of work and SQLAlchemy's asyncio
adapter (greenlet switches, and on SQLite one thread hand-off per statement) and go to the
driver directly:

* every statement is a SQLAlchemy Core construct, compiled **once per dialect** (:class:`Sql`)
  with SQLAlchemy's own bind and result processors, so values are stored exactly as the ORM
  stores them (datetimes, JSON) and read back the same way;
* a transaction is written once, as a generator that yields ``(statement, params)`` and gets
  the rows (or the row count) back (:data:`Work`). On **SQLite** its statements run with
  the stdlib driver on the event loop's own thread — no thread hand-off per statement — on
  the one connection of the process (checked out of the engine's pool of one like any
  session, so the one-connection rule holds, and kept between batches until another
  checkout asks for it: :class:`~minigate.store.db.SqlitePool`); the ``COMMIT`` of a lone
  transaction there too, a batch of several on the connection's own thread (one hand-off per
  batch; :meth:`HotStore._write`), and the WAL's checkpoints on a connection and thread of
  their own (:class:`_Checkpointer`). Transactions that arrive together share one ``BEGIN
  IMMEDIATE … COMMIT``, each in its own savepoint (group commit, :class:`HotStore`). If
  another process holds the write lock, ``BEGIN IMMEDIATE`` fails at once (busy timeout 0
  for that statement) and the batch runs instead on the connection's own thread, which
  waits for the lock without stopping the event loop. A lone read (:meth:`HotStore.read`)
  runs at once on a read-only connection of its own, which writes nothing and so cannot
  break the one-writer rule. On **PostgreSQL** each statement is
  one asyncpg round trip, with asyncpg's prepared-statement cache, and writes that need
  nothing from one another go in one statement (:class:`Many`); a few connections stay
  with the store between units of work while nothing else waits for the pool
  (:class:`~minigate.store.db.HeldPool`, :meth:`HotStore._pg_done`);
* a generator that raises :class:`Rollback` rolls back and returns its value; any other
  exception rolls back and propagates. Unique violations surface as SQLAlchemy's
  ``IntegrityError`` (what services catch); an unavailable database as the driver's own
  error, which :func:`minigate.store.failures.database_unavailable` classifies.

The rules stay where they were: the state table decides every move (callers check
``check_order_transition``; the ``UPDATE`` is still conditional on the source states), the
order's row lock (``FOR UPDATE OF orders`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite) is
taken before a payment changes — or, on the optimistic paths (:meth:`HotStore.steps` with a
guarded :class:`Many`), the payment changes in the same statement as the order's move,
conditional on the version the decision was made on — the outbox event is written in the
same transaction or statement, and the unique notification key makes a duplicate write
nothing.

A generator may run on the SQLite connection's thread: it must not await, touch the event
loop (``ctx.kick()`` belongs to the caller, afterwards) or open another session.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import String, Update, bindparam, exists, func, literal, literal_column, select, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse
from sqlalchemy.util import greenlet_spawn

from minigate.domain.states import ORDER_TRANSITIONS, OrderStatus
from minigate.observability import metrics
from minigate.store.db import SQLITE_BUSY_TIMEOUT_MS, HeldPool, SqlitePool
from minigate.store.models import Event, IdempotencyRecord, Notification, Order, Payment

T = TypeVar("T")
log = logging.getLogger("minigate.store")
Row = dict[str, Any]
#: One statement with its parameters, as a transaction generator yields it (a :class:`Many`
#: takes a list: one dict per part).
Step = tuple["Sql", Any]
#: A transaction: yields steps, receives rows (statements that return rows) or a row count.
Work = Generator[Step, Any, T]


#: PostgreSQL: idle connections the lean path keeps between units of work, at most, and
#: for how long after leaving the pool (:meth:`HotStore._pg_done`).
PG_KEPT = 4
PG_KEPT_SECONDS = 5.0


class StoreClosed(RuntimeError):
    """A statement asked of a store whose runtime is stopping (:meth:`HotStore.aclose`)."""

    def __init__(self) -> None:
        super().__init__("the store is closed: minigate is stopping")


class Rollback(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a transaction generator: roll back and return ``value``."""

    def __init__(self, value: Any) -> None:
        super().__init__("rollback")
        self.value = value


class _Prepared:
    __slots__ = ("sql", "binds", "columns", "returns_rows")

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
        defaults = compiled.construct_params(_check=False)
        processors: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)  # type: ignore[arg-type]
        self.sql: str = compiled.string
        #: (name, processor, default) in positional order.
        self.binds = tuple((name, processors.get(name), defaults.get(name))
                           for name in (compiled.positiontup or ()))
        self.columns = tuple((col[0], col[3]._cached_result_processor(dialect, None))
                             for col in compiled._result_columns or ())
        self.returns_rows = bool(self.columns)

    def args(self, params: dict[str, Any]) -> list[Any]:
        out = []
        for name, process, default in self.binds:
            value = params.get(name, default)
            out.append(process(value) if process is not None else value)
        return out

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[Row]:
        columns = self.columns
        return [{name: (process(value) if process is not None else value)
                 for (name, process), value in zip(columns, row, strict=True)} for row in raw]


class Sql:
    """A Core statement, compiled once per dialect (the text, the positional order of its
    parameters, SQLAlchemy's bind and result processors) and then run on the raw driver."""

    __slots__ = ("stmt", "_by_dialect")

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._by_dialect: dict[str, _Prepared] = {}

    def prepared(self, dialect: Dialect) -> _Prepared:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = _Prepared(self.stmt, dialect)
        return found


class Many(Sql):
    """Several writes that need nothing from one another, as one step with one parameter
    dict per part: on PostgreSQL one statement of data-modifying CTEs (one round trip), on
    SQLite one after another. The step's result is the number of rows each part touched,
    in order.

    With ``guard=True`` the other parts run only if the first touched a row (on
    PostgreSQL each is conditional on the first CTE's ``RETURNING``; on SQLite they are
    skipped): a conditional transition and everything that goes with it, as one
    statement that is atomic without a transaction around it (see
    :meth:`HotStore.steps`). Parts after the first must then be ``UPDATE`` statements or inserts
    made with :func:`insert_values`."""

    __slots__ = ("parts", "guard")

    def __init__(self, *parts: Sql, guard: bool = False) -> None:
        self.parts = parts
        self.guard = guard
        ctes: list[Any] = []
        for i, part in enumerate(parts):
            condition = (exists(select(literal_column("1")).select_from(ctes[0]))
                         if guard and i > 0 else None)
            ctes.append(_as_cte(part, f"w{i}", condition))
        super().__init__(select(*(select(func.count()).select_from(c).scalar_subquery()
                                  .label(f"n{i}") for i, c in enumerate(ctes))))

    @staticmethod
    def merged(params: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {f"w{i}_{k}": v for i, part in enumerate(params) for k, v in part.items()}


class _Insert(Sql):
    """An ``INSERT … VALUES`` that remembers its values, so that :class:`Many` can make it
    conditional (``INSERT … SELECT … WHERE EXISTS``)."""

    __slots__ = ("model", "values")

    def __init__(self, model: type[Any], values: dict[str, Any]) -> None:
        self.model, self.values = model, values
        super().__init__(sa_insert(model).values(values))


def insert_values(model: type[Any], **values: Any) -> Sql:
    """``INSERT INTO model`` with these values: bind parameters (by name) or constants."""
    return _Insert(model, values)


def _as_cte(part: Sql, name: str, condition: Any) -> Any:
    """``part`` as the CTE ``name`` of a :class:`Many`: its parameters renamed
    ``name_x``, returning a row per row it touched, and touching rows only where
    ``condition`` holds (if given). An :func:`insert_values` insert with a condition
    becomes ``INSERT … SELECT … WHERE``."""
    prefix = name + "_"
    stmt: Any
    if isinstance(part, _Insert) and condition is not None:
        table = part.model.__table__
        row = [bindparam(prefix + v.key, type_=table.c[col].type)
               if isinstance(v, BindParameter) else literal(v, type_=table.c[col].type)
               for col, v in part.values.items()]
        stmt = sa_insert(table).from_select(list(part.values), select(*row).where(condition))
    else:
        stmt = _renamed_stmt(part.stmt, prefix)
        if condition is not None:
            if not isinstance(stmt, Update):
                raise TypeError("a guarded part must be an UPDATE or an insert_values() INSERT")
            stmt = stmt.where(condition)
    if not stmt._returning:
        stmt = stmt.returning(literal_column("1"))
    return stmt.cte(name)


def _renamed_stmt(stmt: ClauseElement, prefix: str) -> ClauseElement:
    """``stmt`` with each named parameter ``x`` renamed ``prefix + x``."""

    def rename(element: Any) -> Any:
        if isinstance(element, BindParameter) and not element.unique:
            return bindparam(prefix + element.key, element.value, type_=element.type,
                             required=element.required)
        return None

    traverse: Any = replacement_traverse  # its overloads do not cover a DML statement
    return cast(ClauseElement, traverse(stmt, {}, rename))


def _states(states: Iterable[OrderStatus]) -> Any:
    """``orders.status IN ('…', …)`` rendered inline (our own enum values, never input), so
    the compiled text needs no expansion at execution time."""
    return Order.status.in_([literal_column(f"'{OrderStatus(s).value}'")
                             for s in sorted(states)])


# --- statements ------------------------------------------------------------------------

_ORDER_COLS = [c for c in Order.__table__.columns]
_PAYMENT_COLS = [c.label(f"p_{c.name}") for c in Payment.__table__.columns]

#: A payment by its provider number (what settling it needs) with its order, no lock: a
#: notification settles optimistically, with a write conditional on the order's version
#: (:func:`move_order` with ``expect_version``).
LOCATE_PAYMENT = Sql(
    select(*_ORDER_COLS, *(c for c in _PAYMENT_COLS if c.name in ("p_id", "p_status")))
    .join(Order, Order.id == Payment.order_id)
    .where(Payment.provider == bindparam("provider"),
           Payment.provider_order_no == bindparam("number")))

#: An order with its payment (if any), no lock: the client's pay call reads it first.
ORDER_WITH_PAYMENT = Sql(
    select(*_ORDER_COLS, *_PAYMENT_COLS).outerjoin(Payment, Payment.order_id == Order.id)
    .where(Order.id == bindparam("order_id")))

#: The same, locked, for a transaction that changes the payment.
ORDER_WITH_PAYMENT_LOCKED = Sql(
    select(*_ORDER_COLS, *_PAYMENT_COLS).join(Payment, Payment.order_id == Order.id)
    .where(Order.id == bindparam("order_id"))
    .with_for_update(of=Order))


def move_order(target: OrderStatus, sources: Iterable[OrderStatus], *extra: str,
               expect_version: bool = False) -> Sql:
    """The conditional transition of ``store.repo.move_order``: ``UPDATE orders … WHERE
    status IN (the sources the state table allows to reach target)``, version + 1,
    ``RETURNING`` the new version. Parameters: ``order_id``, ``now`` and each of ``extra``;
    with ``expect_version``, also ``version``: the order must be unchanged since it was
    read (an optimistic lock: the decision was made on that version)."""
    allowed = [s for s in sources if target in ORDER_TRANSITIONS[s]]
    values: dict[str, Any] = {"status": target.value, "updated_at": bindparam("now"),
                              "version": Order.version + 1}
    values.update({k: bindparam(k) for k in extra})
    where = [Order.id == bindparam("order_id"), _states(allowed)]
    if expect_version:
        where.append(Order.version == bindparam("version"))
    return Sql(update(Order).where(*where).values(**values).returning(Order.version))


#: The provider's transaction id if the notification carries one, else the one we have.
UPDATE_PAYMENT_PAID = Sql(
    update(Payment).where(Payment.id == bindparam("payment_id"))
    .values(status="succeeded", next_check_at=None, updated_at=bindparam("now"),
            provider_txn_id=func.coalesce(bindparam("provider_txn_id", type_=String(64)),
                                          Payment.provider_txn_id)))

UPDATE_PAYMENT_PREPAY = Sql(
    update(Payment).where(Payment.id == bindparam("payment_id"))
    .values(status=bindparam("status"), client_params=bindparam("client_params"),
            provider_txn_id=func.coalesce(bindparam("provider_txn_id", type_=String(64)),
                                          Payment.provider_txn_id),
            params_expire_at=bindparam("params_expire_at"), updated_at=bindparam("now")))

INSERT_EVENT = insert_values(
    Event, id=bindparam("id"), type=bindparam("type"), order_id=bindparam("order_id"),
    data=bindparam("data"), deliver=bindparam("deliver"),
    delivery_status=bindparam("delivery_status"), attempts=0,
    next_attempt_at=bindparam("next_attempt_at"), last_error="",
    created_at=bindparam("created_at"))

INSERT_NOTIFICATION = insert_values(
    Notification, provider=bindparam("provider"), event_key=bindparam("event_key"),
    order_id=bindparam("order_id"), outcome=bindparam("outcome"), body=bindparam("body"),
    received_at=bindparam("received_at"))


def _insert_all(model: type[Any]) -> Sql:
    return insert_values(model, **{c.name: bindparam(c.name) for c in model.__table__.columns})


_INSERT_ROW = {model: _insert_all(model) for model in (Order, Payment, IdempotencyRecord)}
INSERT_ORDER = _INSERT_ROW[Order]
#: A keyed request's record, inserted whole (with its answer, for a one-statement operation).
INSERT_KEY = _INSERT_ROW[IdempotencyRecord]


def _insert_if(model: type[Any], condition: Any) -> Sql:
    """``INSERT INTO model`` with every column (as :func:`insert` gives them), written only
    where ``condition`` holds: ``INSERT … SELECT … WHERE``. The step's result is the
    number of rows written, 0 or 1."""
    table = model.__table__
    row = [bindparam(c.name, type_=c.type) for c in table.columns]
    return Sql(sa_insert(table).from_select([c.name for c in table.columns],
                                            select(*row).where(condition)))


#: A payment row, written only while its order is still at the version ``pay`` saw
#: (parameter ``order_version``; the order's id is the payment's ``order_id``). A version
#: moves with every change of the order, so an unchanged version is an unchanged order.
INSERT_PAYMENT_IF_UNCHANGED = _insert_if(
    Payment, exists().where(Order.id == bindparam("order_id"),
                            Order.version == bindparam("order_version")))

#: Store a keyed request's answer with the resource (``Attempt.complete``'s statement).
COMPLETE_KEY = Sql(
    update(IdempotencyRecord)
    .where(IdempotencyRecord.scope == bindparam("scope"),
           IdempotencyRecord.key == bindparam("key"),
           IdempotencyRecord.recovery_point == bindparam("from_point"),
           IdempotencyRecord.state == "in_flight")
    .values(state="done", recovery_point="finished", response_status=bindparam("status"),
            response_body=bindparam("body")))


class Record(SimpleNamespace):
    """A row as plain attributes: what the hot paths build, read and insert instead of a
    transient ORM object, which costs ten times as much to make (SQLAlchemy's instance
    state and attribute events) and is never added to a session here. Every column of
    ``model``'s table is an attribute (None where not given). Read it like the ORM object;
    write rows only through :func:`insert` or the statements of this module."""

    model: ClassVar[type[Any]]
    columns: ClassVar[tuple[str, ...]]


_RECORDS: dict[type[Any], type[Record]] = {
    model: type(f"{model.__name__}Record", (Record,), {
        "model": model, "columns": tuple(c.name for c in model.__table__.columns)})
    for model in (Order, Payment, IdempotencyRecord, Event)}


def record(model: type[Any], **given: Any) -> Any:
    """A :class:`Record` of ``model`` (typed ``Any``: it reads like the ORM object)."""
    kind = _RECORDS[model]
    return kind(**(dict.fromkeys(kind.columns) | given))


def insert(row: Order | Payment | IdempotencyRecord | Record) -> Work[None]:
    """INSERT a record (or a transient ORM object): every column, as it holds it."""
    model = row.model if isinstance(row, Record) else type(row)
    yield _INSERT_ROW[model], values(row)


def values(row: Order | Payment | IdempotencyRecord | Record) -> dict[str, Any]:
    if isinstance(row, Record):
        return {name: getattr(row, name) for name in row.columns}
    return {c.name: getattr(row, c.name) for c in type(row).__table__.columns}


def split(row: Row) -> tuple[Row, Row | None]:
    """A joined row → (order columns, payment columns or None)."""
    order = {c.name: row[c.name] for c in _ORDER_COLS}
    payment = {k[2:]: v for k, v in row.items() if k.startswith("p_")}
    return order, (payment if payment["id"] is not None else None)


# --- running them ----------------------------------------------------------------------


class HotStore:
    """Runs :class:`Sql` statements and transaction generators on an engine's raw driver
    connection, checked out of (and returned to) the engine's own pool.

    On SQLite, transactions that arrive while one is waiting for the connection or being
    written share one commit (*group commit*): each runs inside its own ``SAVEPOINT``, so
    a rollback or an error undoes that one alone, and none is answered before the common
    ``COMMIT`` has succeeded (if it fails, every one of them fails). A commit is most of a
    small transaction's cost; under load it is paid once per batch."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.sync_engine.dialect
        self.sqlite = self.dialect.name == "sqlite"
        #: Statements run so far (``python -m bench.inproc`` counts SQL per operation).
        self.statements = 0
        #: (work, its caller's future, whether it asked to commit on the loop's thread)
        self._queue: list[tuple[Work[Any], asyncio.Future[Any], bool]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None  # a reference keeps it alive
        #: SQLite: the database file for :attr:`_reader` (None: in memory, or a URI).
        self._reader_path = _database_file(engine) if self.sqlite else None
        self._reader: sqlite3.Connection | None = None
        #: SQLite with a database file: the WAL's checkpoints, off the write path.
        self._checkpointer = (_Checkpointer(self._reader_path)
                              if self._reader_path is not None else None)
        #: Set by :meth:`aclose`: nothing more is taken (a late statement would open a
        #: connection on an engine that is being disposed, and leak it).
        self._closed = False
        #: SQLite: the pool's connection, kept (idle, busy timeout 0) between batches
        #: while nothing else asks for it (:class:`~minigate.store.db.SqlitePool`).
        self._held: Any = None
        #: Another checkout asked for the connection during a batch: give it back after.
        self._wanted = False
        #: Our own checkout is under way (the pool's call to :meth:`_give_up` is ours).
        self._taking = False
        #: PostgreSQL: connections kept idle between units of work, each with when it
        #: left the pool, newest last (:meth:`_pg_done`).
        self._idle: list[tuple[Any, float]] = []

    async def read(self, sql: Sql, **params: Any) -> list[Row]:
        """One statement that only reads: what was committed when it runs.

        On SQLite it runs at once on a read-only connection of its own (in WAL mode a
        reader neither waits for the writer nor holds it up), so it neither queues behind
        the write batches nor pays for a transaction; only if that connection reports the
        database busy (another process recovering the WAL, say) does it take the write
        connection's path. On PostgreSQL it is one autocommitted statement."""

        def work() -> Work[list[Row]]:
            rows: list[Row] = yield sql, params
            return rows

        self._check_open()
        if self.sqlite:
            if self._reader_path is not None:
                rows = self._read_now(sql, params)
                if rows is not None:
                    return rows
            return await self._batched(work())
        return await self._asyncpg(work(), transaction=False)

    def _read_now(self, sql: Sql, params: dict[str, Any]) -> list[Row] | None:
        assert self._reader_path is not None
        try:
            if self._reader is None:
                self._reader = _open_reader(self._reader_path)
            prepared = sql.prepared(self.dialect)
            cursor = self._reader.execute(prepared.sql, prepared.args(params))
            try:
                rows = prepared.rows(cursor.fetchall())
            finally:
                cursor.close()
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            return None
        self.statements += 1
        return rows

    def close(self) -> None:
        """Close what this store opened of its own (SQLite's read connection) and give
        back the pool's connections it holds idle; the engine keeps its pool. Safe to
        call twice; a later read opens the connection again."""
        self._release()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if self._checkpointer is not None:
            self._checkpointer.close()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Before the engine is disposed: take nothing more, let the writes already taken
        finish (SQLite's queued batches; up to ``timeout`` seconds, then the writer is
        cancelled and what is left fails), and :meth:`close`. A statement asked for
        afterwards fails at once (:class:`StoreClosed`)."""
        self._closed = True
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            _, pending = await asyncio.wait({flusher}, timeout=timeout)
            for task in pending:
                task.cancel()
        batch, self._queue = self._queue, []
        _fail(batch, StoreClosed())
        if self._checkpointer is not None:
            await self._checkpointer.idle()
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed()

    async def transaction(self, work: Work[T], *, commit_on_loop: bool = False) -> T:
        """``work`` in one transaction. ``commit_on_loop``: see :meth:`_write`."""
        self._check_open()
        if self.sqlite:
            return await self._batched(work, commit_on_loop)
        return await self._asyncpg(work, transaction=True)

    async def steps(self, work: Work[T], *, commit_on_loop: bool = False) -> T:
        """``work`` whose every step is atomic on its own — reads, and writes that are one
        statement each (a guarded :class:`Many`, say) — and correct whatever commits
        between its steps: on PostgreSQL each step is one autocommitted round trip, with
        no ``BEGIN`` and ``COMMIT`` around them; on SQLite a transaction as usual (group
        commit makes that the cheaper way there). :class:`Rollback` returns its value;
        nothing is undone, so a step that writes must come last or be undone by design.
        ``commit_on_loop``: see :meth:`_write`."""
        self._check_open()
        if self.sqlite:
            return await self._batched(work, commit_on_loop)
        return await self._asyncpg(work, transaction=False)

    async def _asyncpg(self, work: Work[T], *, transaction: bool) -> T:
        counted = self._counted(work)
        flight = _Flight()
        try:
            for attempt in (1, 2):
                fairy, since = await self._pg_connection()
                driver: Any = fairy.driver_connection
                flight.clean = True
                done = False
                try:
                    result = await _run_asyncpg(driver, self.dialect, counted, transaction,
                                                flight)
                    done = True
                    return result
                except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                    if attempt == 1 and flight.refused_at_start(exc):
                        continue  # nothing reached the server: the next connection runs it
                    raise
                finally:
                    if flight.clean and not driver.is_closed() \
                            and not driver.is_in_transaction():
                        # nothing to reset: the transaction ended here
                        if done:
                            self._pg_done(fairy, since)
                        else:
                            fairy.close()
                    else:  # broken or interrupted mid-statement or mid-transaction:
                        # never hand it to anyone else
                        await asyncio.shield(greenlet_spawn(fairy.invalidate))
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns
        finally:
            counted.close()

    async def _pg_connection(self) -> tuple[Any, float]:
        """A connection for one unit of work, and when it left the pool: one kept idle
        since an earlier unit if there is one (newest first; one whose server connection
        has closed meanwhile is dropped), else one from the pool."""
        while self._idle:
            fairy, since = self._idle.pop()
            if not fairy.driver_connection.is_closed():
                return fairy, since
            await asyncio.shield(greenlet_spawn(fairy.invalidate))
        self._check_open()
        fairy = await self.engine.raw_connection()
        return fairy, time.monotonic()

    def _pg_done(self, fairy: Any, since: float) -> None:
        """A unit of work ended with its connection clean and idle: keep the connection
        for the next unit (:class:`~minigate.store.db.HeldPool`), or give it back to the
        pool: when a checkout is under way, when :data:`PG_KEPT` are kept already, when
        the store is closing, when the engine's pool is not the one it came from (the
        engine was disposed of), or when it left the pool more than :data:`PG_KEPT_SECONDS`
        ago (so the pool's own rules, recycling and invalidation after an outage, apply
        to it again within that time)."""
        pool = self.engine.sync_engine.pool
        if (self._closed or not isinstance(pool, HeldPool) or pool.waiting
                or fairy._pool is not pool  # the engine was disposed of meanwhile
                or len(self._idle) >= PG_KEPT or time.monotonic() - since > PG_KEPT_SECONDS):
            fairy.close()
            return
        pool.holders.add(self._pg_give_up)  # once per pool (a disposed engine makes another)
        self._idle.append((fairy, since))

    def _pg_give_up(self) -> None:
        """The pool's call, before any other checkout: give back the idle connections
        (those in use go back as their units end: :meth:`_pg_done` sees the checkout)."""
        idle, self._idle = self._idle, []
        for fairy, _ in idle:
            fairy.close()

    async def _batched(self, work: Work[T], commit_on_loop: bool = False) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((self._counted(work), future, commit_on_loop))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                fairy, self._held = self._held, None
                if fairy is None:
                    try:
                        fairy = await self._take()
                    except BaseException as exc:
                        batch, self._queue = self._queue, []
                        _fail(batch, exc)
                        if not isinstance(exc, Exception):
                            raise
                        continue
                # Everything that queued while the connection was busy goes in one commit;
                # a request cancelled before its turn is not run.
                batch = [entry for entry in self._queue if not entry[1].cancelled()]
                self._queue = []
                driver: Any = fairy.driver_connection
                kept = False
                try:
                    await self._write(driver, batch)
                finally:
                    if driver._conn.in_transaction:
                        await asyncio.shield(greenlet_spawn(fairy.invalidate))
                    elif self._may_keep():
                        self._held, kept = fairy, True
                    else:
                        _give_back(fairy)
                if not kept:
                    # Let the session that asked for the connection take it before the
                    # next batch does (the pool's queue would hand it straight back to us).
                    self._wanted = False
                    await asyncio.sleep(0)
        finally:
            self._flushing = False

    async def _take(self) -> Any:
        """Check the connection out of the engine's pool, to keep between batches where
        the pool lets us (:class:`~minigate.store.db.SqlitePool`): its busy timeout is 0
        while we hold it (``BEGIN IMMEDIATE`` must not wait on the loop's thread), and
        :func:`_give_back` restores it."""
        self._taking = True
        try:
            fairy = await self.engine.raw_connection()
        finally:
            self._taking = False
        pool = self.engine.sync_engine.pool
        if isinstance(pool, SqlitePool):
            pool.holders.add(self._give_up)
        try:
            driver: Any = fairy.driver_connection
            driver._conn.execute("PRAGMA busy_timeout=0")
            if self._checkpointer is not None:  # its checkpoints are _Checkpointer's now
                driver._conn.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            _give_back(fairy)
            raise
        return fairy

    def _may_keep(self) -> bool:
        """Keep the connection after a batch? Not if a checkout asked for it during the
        batch, or one is under way still (it may have lost the connection to the batch:
        asyncio's queue hands an item to whoever asks first, not to the waiter it woke)."""
        if self._wanted or self._closed:
            return False
        pool = self.engine.sync_engine.pool
        return isinstance(pool, SqlitePool) and pool.waiting == 0

    def _give_up(self) -> None:
        """The pool's call, before any other checkout: give the connection back now if it
        is idle here, or after the batch that is using it."""
        if self._taking:
            return
        if self._held is not None:
            self._release()
        elif self._flushing:
            self._wanted = True

    def _release(self) -> None:
        fairy, self._held = self._held, None
        if fairy is not None:
            _give_back(fairy)
        self._pg_give_up()

    async def _write(self, driver: Any,
                     batch: list[tuple[Work[Any], asyncio.Future[Any], bool]]) -> None:
        """The statements on the event loop's thread, with no hand-off at all; the
        ``COMMIT`` on the loop too when the batch holds one transaction, or when every
        transaction of it asked for the loop (``commit_on_loop``: notification intake),
        and otherwise on the connection's own thread.

        The ``COMMIT`` appends the batch's pages to the WAL (tens of microseconds for one
        transaction, no ``fsync``: ``synchronous=NORMAL``). It used to run the WAL's
        checkpoint too, every ~1,000 pages (5–10 ms of file copying and ``fsync`` on a
        local disk, far longer on a slow one), which is why it went to the connection's
        thread; the checkpoints now run on a connection and thread of their own
        (:class:`_Checkpointer`), beside the writes, so a lone transaction's ``COMMIT``
        costs less on the loop than the hand-off would (round 16 of issue 16,
        ``docs/performance.md``). The ``COMMIT`` of a batch of several still goes to the
        thread, where its file writes overlap the loop's work. Should the checkpoints fall behind
        (the WAL past :attr:`_Checkpointer.LIMIT` pages), one batch commits on the thread
        and checkpoints there before the next batch begins, as SQLite itself would.

        If another process holds the write lock, the whole batch runs on the connection's
        thread, which may wait for it (the busy timeout) without stopping the loop."""
        conn: sqlite3.Connection = driver._conn
        works = [w for w, _, _ in batch]
        checkpointer = self._checkpointer
        catch_up = checkpointer is not None and checkpointer.behind()
        commit_on_loop = not catch_up and (
            all(on_loop for _, _, on_loop in batch)
            or (checkpointer is not None and len(batch) == 1))
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")  # busy timeout 0 while we hold it: _take
                began = True
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
                began = False
            if began and commit_on_loop:
                outcomes = _run_batch(conn, self.dialect, works)
            elif began:
                outcomes = _run_batch(conn, self.dialect, works, commit=False)
                if conn.in_transaction:  # not if a batch of one was rolled back
                    await _on_thread(driver, partial(_commit, conn, checkpoint=catch_up))
            else:
                outcomes = await _on_thread(driver, partial(_run_waiting, conn, self.dialect,
                                                            works))
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if checkpointer is not None:
            checkpointer.committed(len(batch), caught_up=catch_up)
        for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _counted(self, work: Work[T]) -> Work[T]:
        result: Any = None
        while True:
            try:
                step = work.send(result)
            except StopIteration as done:
                return cast(T, done.value)
            self.statements += 1
            result = yield step


def _fail(batch: list[tuple[Work[Any], asyncio.Future[Any], bool]],
          exc: BaseException) -> None:
    for work, future, _ in batch:
        work.close()
        if not future.done():
            future.set_exception(exc)


async def _on_thread(driver: Any, function: Callable[[], T]) -> T:
    """Run ``function`` on aiosqlite's own thread (the connection's thread), in one hand-off:
    the queue SQLAlchemy's aiosqlite adapter uses too."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    driver._tx.put_nowait((future, function))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # The thread finishes the transaction (commit or rollback) whatever happens here;
        # wait for it, so the connection goes back to the pool only once it is idle.
        await asyncio.wait([future])
        raise


def _give_back(fairy: Any) -> None:
    """Return a connection taken by :meth:`HotStore._take` to its pool, with the busy
    timeout every other user of the connection expects. Never raises (the pool may be
    calling: another checkout must not fail for it): a connection whose busy timeout
    cannot be set is marked to be replaced at its next checkout (closing it now would
    need a greenlet)."""
    try:
        conn = fairy.driver_connection._conn
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default
    except sqlite3.Error:
        fairy.invalidate(soft=True)
    fairy.close()


def _run_waiting(conn: sqlite3.Connection, dialect: Dialect,
                 works: list[Work[Any]]) -> list[tuple[bool, Any]]:
    """:func:`_run_batch` on the connection's thread when another process holds the write
    lock: ``BEGIN IMMEDIATE`` waits for it (the busy timeout) without stopping the loop."""
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    try:
        return _run_batch(conn, dialect, works, begin=True)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _run_batch(conn: sqlite3.Connection, dialect: Dialect, works: list[Work[Any]], *,
               begin: bool = False, commit: bool = True) -> list[tuple[bool, Any]]:
    """Each transaction in its own savepoint, then one COMMIT: (True, value) or (False,
    exception) per transaction. Raises (everything rolled back) if the commit fails or a
    savepoint cannot be rolled back. A batch of one needs no savepoint: the transaction
    is the batch's, and rolling it back undoes that one alone. ``commit=False``: the
    caller commits (:func:`_commit`), and no outcome holds until it has."""
    if begin:
        conn.execute("BEGIN IMMEDIATE")
    try:
        if len(works) == 1:
            outcomes = [_run_one(conn, dialect, works[0], conn.rollback)]
        else:
            outcomes = []
            for work in works:
                conn.execute("SAVEPOINT hot")
                outcomes.append(_run_one(conn, dialect, work,
                                         partial(conn.execute, "ROLLBACK TO hot")))
                conn.execute("RELEASE hot")
        if commit:
            conn.commit()  # nothing to commit if a batch of one was rolled back
        return outcomes
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _commit(conn: sqlite3.Connection, *, checkpoint: bool = False) -> None:
    """The batch's COMMIT (on the connection's thread); if it fails, everything is rolled
    back and it raises. ``checkpoint``: then a checkpoint of the WAL on this connection
    (:meth:`_Checkpointer.behind`), whose failure fails nothing: the batch is committed."""
    try:
        conn.commit()
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    if checkpoint:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint after a commit failed: %s", exc)


class _Checkpointer:
    """SQLite's WAL checkpoints, on a connection and a thread of their own.

    The write connection's automatic checkpoint is off while :class:`HotStore` holds it
    (``PRAGMA wal_autocheckpoint=0``, restored by :func:`_give_back`). Instead, once
    :attr:`EVERY` write batches (or :attr:`EVERY_TRANSACTIONS` transactions) have
    committed since the last one, a ``PASSIVE`` checkpoint runs here: it copies the WAL's
    pages into the database file and syncs it while the writes go on (in WAL mode a
    checkpoint takes no lock a writer needs), and it releases the GIL while SQLite works,
    so neither the event loop nor the next write waits for it.

    A checkpoint that runs beside writes cannot always copy *every* page: the WAL starts
    over from its beginning only when one has copied all of it before the next write
    begins. Under a steady stream of writes that may not happen, and the WAL would grow;
    so each checkpoint reports the WAL's length, and past :attr:`LIMIT` pages the next
    write batch checkpoints on its own connection before any other write begins
    (:meth:`behind`): SQLite's own behaviour, for that batch only. A checkpoint that fails
    counts as one that found the WAL past the limit."""

    #: Write batches committed between checkpoints: a lone transaction appends about 10
    #: pages, so about SQLite's own automatic checkpoint (every 1,000 pages) at low load;
    #: the transactions of a batch share its pages, so a batch appends more, but not in
    #: proportion. Counting transactions instead made checkpoints several times more
    #: frequent than needed at saturation, at a measurable CPU cost (round 16).
    EVERY = 100
    #: ...or transactions, whichever comes first (large batches of notifications, about 4
    #: pages each: well before :attr:`LIMIT`).
    EVERY_TRANSACTIONS = 1_000
    #: WAL pages (4 KiB each by default) past which the write path checkpoints itself.
    LIMIT = 8_000

    def __init__(self, path: str) -> None:
        self.path = path
        #: Checkpoints run here, and the WAL's length (pages) the last one found.
        self.checkpoints = 0
        self.wal_pages = 0
        #: Batches that checkpointed on the write connection (:meth:`behind`).
        self.caught_up = 0
        self._batches = self._transactions = 0
        self._running: asyncio.Future[int] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def behind(self) -> bool:
        """Should the next batch checkpoint on the write connection? (The WAL is past
        :attr:`LIMIT` and no checkpoint is running here, which would hold it off.)"""
        return self.wal_pages > self.LIMIT and self._running is None

    def committed(self, transactions: int, *, caught_up: bool = False) -> None:
        """A write batch has committed (on the event loop's thread)."""
        if caught_up:
            self.caught_up += 1
            self.wal_pages = 0  # the next checkpoint here measures it again
            metrics.SQLITE_CHECKPOINTS.labels("write_path").inc()
        self._batches += 1
        self._transactions += transactions
        if self._running is not None or (self._batches < self.EVERY
                                         and self._transactions < self.EVERY_TRANSACTIONS):
            return
        self._batches = self._transactions = 0
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="minigate-checkpoint")
        running = asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
        self._running = running
        running.add_done_callback(self._done)

    def _checkpoint(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=0")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        _busy, pages, _copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(pages)

    def _done(self, running: asyncio.Future[int]) -> None:
        self._running = None
        if running.cancelled():
            return
        exc = running.exception()
        if exc is not None:
            log.warning("WAL checkpoint failed: %s", exc)
            self.wal_pages = self.LIMIT + 1
            metrics.SQLITE_CHECKPOINT_FAILURES.inc()
            return
        self.checkpoints += 1
        self.wal_pages = running.result()
        metrics.SQLITE_CHECKPOINTS.labels("beside").inc()
        metrics.SQLITE_WAL_PAGES.set(self.wal_pages)

    async def idle(self) -> None:
        """Until no checkpoint is running here."""
        running = self._running
        if running is not None:
            await asyncio.wait([running])

    def close(self) -> None:
        """Wait for a running checkpoint and close the connection; a later commit opens
        them again (as :meth:`HotStore.close` allows)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._running = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _run_one(conn: sqlite3.Connection, dialect: Dialect, work: Work[Any],
             undo: Callable[[], Any]) -> tuple[bool, Any]:
    """One transaction of a batch: (True, value), or (False, exception) after ``undo``
    (its savepoint's rollback, or the whole transaction's for a batch of one)."""
    try:
        value = _drive_sqlite(conn, dialect, work)
    except Rollback as stop:
        undo()
        return True, stop.value
    except sqlite3.IntegrityError as exc:
        undo()
        error = IntegrityError(None, None, exc)
        error.__cause__ = exc
        return False, error
    except Exception as exc:
        undo()
        return False, exc
    return True, value


def _drive_sqlite(conn: sqlite3.Connection, dialect: Dialect, work: Work[T]) -> T:
    try:
        result: Any = None
        while True:
            sql, params = work.send(result)
            if isinstance(sql, Many):
                result = []
                for part, part_params in zip(sql.parts, params, strict=True):
                    skip = sql.guard and bool(result) and result[0] == 0
                    result.append(0 if skip else
                                  _count(_sqlite_step(conn, dialect, part, part_params)))
            else:
                result = _sqlite_step(conn, dialect, sql, params)
    except StopIteration as done:
        return cast(T, done.value)
    finally:
        work.close()


def _sqlite_step(conn: sqlite3.Connection, dialect: Dialect, sql: Sql,
                 params: dict[str, Any]) -> list[Row] | int:
    prepared = sql.prepared(dialect)
    cursor = conn.execute(prepared.sql, prepared.args(params))
    try:
        return prepared.rows(cursor.fetchall()) if prepared.returns_rows else cursor.rowcount
    finally:
        cursor.close()


def _count(result: list[Row] | int) -> int:
    return len(result) if isinstance(result, list) else result


class _Flight:
    """What one unit of work did to its asyncpg connection, for :meth:`HotStore._asyncpg`.

    ``clean`` is False from the moment a statement is sent until its answer has arrived:
    an exception in between (a cancellation, a lost connection, a protocol error) leaves
    the connection mid-protocol, and handed back to the pool it would fail whoever takes
    it next ("another operation is in progress"). A server's error answer is clean (the
    protocol is back at ReadyForQuery, or the connection is closed), and so is an
    exception raised by the work itself between statements.

    ``request`` is the first statement, taken from the work before the connection is used,
    so that if the connection refuses it outright the next connection can be given it."""

    __slots__ = ("clean", "started", "request")

    def __init__(self) -> None:
        self.clean = True
        self.started = False
        self.request: Step | None = None

    def refused_at_start(self, exc: BaseException) -> bool:
        """The connection refused the first thing asked of it before sending anything:
        another caller left an operation in progress on it (asyncpg checks its protocol
        state before it writes a message)."""
        text = str(exc)
        return not self.started and ("another operation" in text
                                     or "cannot switch to state" in text)


async def _run_asyncpg(conn: Any, dialect: Dialect, work: Work[T], transaction: bool,
                       flight: _Flight) -> T:
    """Run ``work`` on ``conn``. ``work`` is closed here unless the connection refused the
    first statement (:meth:`_Flight.refused_at_start`): then the caller may run it again
    on another connection, from the same first statement."""
    began = False
    retry = False
    try:
        if flight.request is None:
            flight.request = work.send(None)
        if transaction:
            flight.clean = False
            await conn.execute("BEGIN")
            flight.clean = began = flight.started = True
        sql, params = flight.request
        while True:
            prepared = sql.prepared(dialect)
            flight.clean = False
            if isinstance(sql, Many):
                merged = Many.merged(params)
                result: Any = list(await conn.fetchrow(prepared.sql, *prepared.args(merged)))
            elif prepared.returns_rows:
                result = prepared.rows(await conn.fetch(prepared.sql, *prepared.args(params)))
            else:
                status = await conn.execute(prepared.sql, *prepared.args(params))
                result = int(status.rsplit(" ", 1)[-1])
            flight.clean = flight.started = True
            sql, params = work.send(result)
    except StopIteration as done:
        if began:
            flight.clean = False
            await conn.execute("COMMIT")
            flight.clean = True
        return cast(T, done.value)
    except Rollback as stop:
        if began:
            flight.clean = False
            await conn.execute("ROLLBACK")
            flight.clean = True
        return cast(T, stop.value)
    except asyncpg.IntegrityConstraintViolationError as exc:
        flight.clean = True  # the server's answer
        await _rollback(conn, began)
        raise IntegrityError(None, None, exc) from exc
    except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
        retry = flight.refused_at_start(exc)
        await _rollback(conn, began)
        raise
    except BaseException as exc:
        if isinstance(exc, asyncpg.PostgresError):
            flight.clean = True  # the server's answer
        await _rollback(conn, began)
        raise
    finally:
        if not retry:
            work.close()


async def _rollback(conn: Any, began: bool) -> None:
    if began and not conn.is_closed() and conn.is_in_transaction():
        try:
            await conn.execute("ROLLBACK")
        except Exception:  # noqa: S110 - the caller invalidates a connection left in a txn
            pass


_stores: weakref.WeakKeyDictionary[AsyncEngine, HotStore] = weakref.WeakKeyDictionary()


def _database_file(engine: AsyncEngine) -> str | None:
    """The SQLite database's file, or None for an in-memory database or a URI filename
    (each connection would open a database of its own, or a file given by its query)."""
    url = engine.url
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:") or url.query:
        return None
    return name


def _open_reader(path: str) -> sqlite3.Connection:
    """A read-only connection for :meth:`HotStore.read`: autocommit (each statement its
    own read transaction), never waiting for a lock (busy: the caller takes the write
    connection's path), and refusing any write."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA query_only=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def hot_store(engine: AsyncEngine) -> HotStore:
    """The engine's :class:`HotStore` (one per engine)."""
    found = _stores.get(engine)
    if found is None:
        found = _stores[engine] = HotStore(engine)
    return found
