"""The lean store path (``store/hot.py``) on both databases: what it writes reads back the
same through the ORM, a rollback leaves nothing, a unique violation is SQLAlchemy's
IntegrityError, the connection goes back to the pool clean, and on SQLite a transaction
that must wait for another process's write lock does not stop the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from minigate.domain.events import EventType
from minigate.domain.states import OPEN_STATES, OrderStatus
from minigate.store import hot, repo
from minigate.store.db import SQLITE_BUSY_TIMEOUT_MS, make_engine, migrate, session_factory
from minigate.store.models import Event, Order, Payment

NOW = datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


def _order(number: int, **kw: Any) -> Order:
    values: dict[str, Any] = dict(
        id=f"ord_hot{number}", merchant_reference=f"ref-{number}", amount_minor=1230,
        currency="NZD", description="tea", channel="wechat", provider="latipay",
        status="created", client_token_hash="0" * 64, refunded_minor=0,
        refund_reserved_minor=0, metadata_json={"cart": [1, 2], "note": "ü"}, flagged=0,
        expires_at=NOW + timedelta(hours=2), paid_at=None, created_at=NOW, updated_at=NOW,
        version=1, close_after=None)
    values.update(kw)
    return Order(**values)


def _payment(order: Order) -> Payment:
    return Payment(id="pay_" + order.id, order_id=order.id, provider="latipay",
                   provider_order_no="N" + order.id, provider_txn_id=None, status="created",
                   openid="o1", client_params=None, params_expire_at=None,
                   next_check_at=NOW + timedelta(seconds=20), checks=0, created_at=NOW,
                   updated_at=NOW)


async def test_what_it_writes_the_orm_reads_back_the_same(engine: AsyncEngine) -> None:
    store = hot.hot_store(engine)
    order = _order(1)
    await store.transaction(hot.insert(order))
    await store.transaction(hot.insert(_payment(order)))
    async with session_factory(engine)() as session:
        stored = await session.get(Order, order.id)
        assert stored is not None
        assert stored.expires_at == order.expires_at and stored.expires_at.tzinfo is not None
        assert stored.metadata_json == {"cart": [1, 2], "note": "ü"}
        assert (stored.amount_minor, stored.status, stored.version) == (1230, "created", 1)
    rows = await store.read(hot.ORDER_WITH_PAYMENT, order_id=order.id)
    got, payment = hot.split(rows[0])
    assert got["created_at"] == NOW and got["metadata_json"] == order.metadata_json
    assert payment is not None and payment["next_check_at"] == NOW + timedelta(seconds=20)
    assert await store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_none") == []


async def test_a_record_is_inserted_as_the_orm_object_would_be(engine: AsyncEngine) -> None:
    """The hot paths build plain records, not ORM objects: the same row either way, and
    every column not given is NULL (as an ORM object leaves it)."""
    store = hot.hot_store(engine)
    orm = _order(30, paid_at=None, close_after=None)
    given = {c.name: getattr(orm, c.name) for c in Order.__table__.columns
             if c.name not in ("paid_at", "close_after")}
    rec = hot.record(Order, **{**given, "id": "ord_rec30", "merchant_reference": "ref-rec30"})
    assert rec.paid_at is None and rec.close_after is None and rec.status == "created"
    assert set(hot.values(rec)) == {c.name for c in Order.__table__.columns}
    await store.transaction(hot.insert(orm))
    await store.transaction(hot.insert(rec))
    async with session_factory(engine)() as session:
        a, b = await session.get(Order, orm.id), await session.get(Order, "ord_rec30")
        assert a is not None and b is not None
        differ = {c.name for c in Order.__table__.columns
                  if getattr(a, c.name) != getattr(b, c.name)}
        assert differ == {"id", "merchant_reference"}


async def test_the_conditional_move_and_the_event_in_one_transaction(engine: AsyncEngine) -> None:
    store = hot.hot_store(engine)
    order = _order(2)
    await store.transaction(hot.insert(order))
    await store.transaction(hot.insert(_payment(order)))
    pay = hot.move_order(OrderStatus.PAID, OPEN_STATES, "paid_at")
    later = NOW + timedelta(minutes=1)

    def work() -> hot.Work[int]:
        rows = yield hot.LOCATE_PAYMENT, {"provider": "latipay", "number": "N" + order.id}
        assert rows and rows[0]["status"] == "created"
        moved = yield pay, {"order_id": order.id, "now": later, "paid_at": later}
        yield hot.INSERT_EVENT, repo.event_values(EventType.ORDER_PAID, later,
                                                  order_id=order.id, data={"x": 1},
                                                  webhooks=True)
        again = yield pay, {"order_id": order.id, "now": later, "paid_at": later}
        return len(moved) * 10 + len(again)

    assert await store.transaction(work()) == 10  # the second move finds no open state
    async with session_factory(engine)() as session:
        stored = await session.get(Order, order.id)
        assert stored is not None and (stored.status, stored.version) == ("paid", 2)
        assert stored.paid_at == later
        events = await repo.events_for_order(session, order.id)
        assert [(e.type, e.data, e.delivery_status) for e in events] == [
            ("order.paid", {"x": 1}, "pending")]


async def test_rollback_error_and_duplicate_leave_nothing(engine: AsyncEngine) -> None:
    store = hot.hot_store(engine)
    first = _order(3)
    await store.transaction(hot.insert(first))

    def then(signal: BaseException) -> hot.Work[None]:
        yield from hot.insert(_order(4))
        raise signal

    assert await store.transaction(then(hot.Rollback("kept"))) == "kept"
    with pytest.raises(ValueError, match="a bug"):
        await store.transaction(then(ValueError("a bug")))

    def duplicate() -> hot.Work[None]:
        yield from hot.insert(_order(5))
        yield from hot.insert(_order(6, merchant_reference=first.merchant_reference))

    with pytest.raises(IntegrityError):
        await store.transaction(duplicate())
    async with session_factory(engine)() as session:  # the connection came back usable
        count = await session.scalar(select(func.count()).select_from(Order))
        assert count == 1
        assert await session.scalar(select(func.count()).select_from(Event)) == 0


async def test_concurrent_transactions_fail_or_commit_one_by_one(engine: AsyncEngine) -> None:
    """On SQLite these share one commit (each in its own savepoint); on PostgreSQL each is
    its own transaction. Either way a failure or a rollback undoes that one alone."""
    store = hot.hot_store(engine)
    await store.transaction(hot.insert(_order(10)))

    def rolled_back() -> hot.Work[None]:
        yield from hot.insert(_order(12))
        raise hot.Rollback(None)

    def duplicate() -> hot.Work[None]:
        yield from hot.insert(_order(13, merchant_reference="ref-10"))

    def bug() -> hot.Work[None]:
        yield from hot.insert(_order(14))
        raise ValueError("a bug")

    results = await asyncio.gather(
        store.transaction(hot.insert(_order(11))), store.transaction(rolled_back()),
        store.transaction(duplicate()), store.transaction(bug()),
        store.transaction(hot.insert(_order(15))),
        store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot10"), return_exceptions=True)
    assert results[0] is None and results[1] is None and results[4] is None
    assert isinstance(results[2], IntegrityError) and isinstance(results[3], ValueError)
    assert [r["id"] for r in results[5]] == ["ord_hot10"]  # type: ignore[index]
    async with session_factory(engine)() as session:
        ids = (await session.scalars(select(Order.id).order_by(Order.id))).all()
        assert ids == ["ord_hot10", "ord_hot11", "ord_hot15"]


async def test_sqlite_waits_for_another_process_lock_without_stopping_the_loop(
    sqlite_url: str,
) -> None:
    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    other = sqlite3.connect(sqlite_url.split(":///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        task = asyncio.create_task(store.transaction(hot.insert(_order(7))))
        ticks = 0
        for _ in range(20):  # the event loop keeps running meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not task.done()
        other.execute("COMMIT")
        await asyncio.wait_for(task, timeout=10)
        rows = await store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot7")
        assert [r["id"] for r in rows] == ["ord_hot7"]
        async with session_factory(engine)() as session, session.begin():
            session.add(_order(8))  # the ORM still has its connection, with its busy timeout
    finally:
        other.close()
        await engine.dispose()


async def test_sqlite_lone_read_neither_waits_for_the_writer_nor_sees_its_uncommitted_rows(
    sqlite_url: str,
) -> None:
    """``read`` on SQLite uses a read-only connection of its own: while a session holds the
    engine's one connection mid-transaction, a read still answers, with what was committed."""
    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    try:
        await store.transaction(hot.insert(_order(20)))
        async with session_factory(engine)() as session, session.begin():
            session.add(_order(21))
            await session.flush()  # written, not committed; the pool's connection is taken
            rows = await asyncio.wait_for(
                store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot20"), timeout=10)
            assert [r["id"] for r in rows] == ["ord_hot20"]
            assert await asyncio.wait_for(
                store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot21"), timeout=10) == []
        rows = await store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot21")
        assert [r["id"] for r in rows] == ["ord_hot21"]  # committed now
        reader = store._reader
        assert reader is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("DELETE FROM orders")
    finally:
        store.close()
        await engine.dispose()


async def test_sqlite_read_takes_the_write_path_when_its_connection_is_busy(
    sqlite_url: str,
) -> None:
    """A read connection refused as busy (in WAL mode: another process recovering the WAL,
    or holding the database exclusively) is not an error: the read takes the write
    connection's path, which waits for locks off the event loop, and answers the same;
    any other error is raised."""

    class Refusing:
        def __init__(self, message: str) -> None:
            self.message = message

        def execute(self, *_: Any) -> Any:
            raise sqlite3.OperationalError(self.message)

        def close(self) -> None:
            pass

    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    try:
        await store.transaction(hot.insert(_order(30)))
        store._reader = Refusing("database is locked")  # type: ignore[assignment]
        rows = await store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot30")
        assert [r["id"] for r in rows] == ["ord_hot30"]
        store._reader = Refusing("disk I/O error")  # type: ignore[assignment]
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            await store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot30")
    finally:
        store.close()
        await engine.dispose()


async def test_a_closed_store_finishes_its_batch_and_opens_no_connection(
        engine: AsyncEngine) -> None:
    """Stopping waits for the write in progress and refuses what comes after it: a late
    statement used to open a connection on the engine being disposed (and leak it)."""
    store = hot.HotStore(engine)  # its own store: the engine's shared one stays open
    checkouts: list[object] = []

    def checked_out(*_: Any) -> None:
        checkouts.append(None)

    event.listen(engine.sync_engine, "checkout", checked_out)
    try:
        writing = asyncio.ensure_future(store.transaction(hot.insert(_order(20))))
        await asyncio.sleep(0)  # the write is under way (SQLite: queued for its batch)
        await store.aclose()
        assert await writing is None  # finished, not cut off
        assert len(checkouts) == 1
        for late in (store.transaction(hot.insert(_order(21))),
                     store.steps(hot.insert(_order(22))),
                     store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot20")):
            with pytest.raises(hot.StoreClosed):
                await late
        assert len(checkouts) == 1  # no connection taken (or opened) after closing
    finally:
        event.remove(engine.sync_engine, "checkout", checked_out)
    async with session_factory(engine)() as session:
        ids = (await session.scalars(select(Order.id).where(Order.id.like("ord_hot2%")))).all()
        assert ids == ["ord_hot20"]


@pytest.mark.postgres
async def test_a_statement_cancelled_mid_flight_never_reaches_the_next_caller(
    postgres_url: str,
) -> None:
    """A read cancelled while PostgreSQL runs it (a client gone, a deadline) leaves its
    connection mid-protocol, waiting for the cancellation's answer. The store does not hand
    such a connection to the next caller: it is discarded, and the next statement runs on
    a new one (another server process)."""
    engine = make_engine(postgres_url, pool_size=1)  # the next read gets the same slot
    try:
        store = hot.hot_store(engine)
        slow = hot.Sql(select(func.pg_sleep(2)))
        backend = hot.Sql(select(func.pg_backend_pid().label("pid")))
        pid = (await store.read(backend))[0]["pid"]
        assert (await store.read(backend))[0]["pid"] == pid  # a clean end keeps it
        for _ in range(3):
            task = asyncio.ensure_future(store.read(slow))
            await asyncio.sleep(0.2)  # the statement is running on the server
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            rows = await store.read(backend)
            assert len(rows) == 1 and rows[0]["pid"] != pid
            pid = rows[0]["pid"]
            async with session_factory(engine)() as session:  # and for the ORM too
                assert await session.scalar(select(func.now())) is not None
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_connection_left_mid_operation_is_discarded_and_the_statement_runs_on_another(
    postgres_url: str,
) -> None:
    """Should the pool ever hold a connection with an operation still in progress (seen
    once in the fault soak, while PostgreSQL was stopping), asyncpg refuses the next
    statement before sending it. Nothing reached the server, so the store runs the
    statement on a fresh connection — for a read and for a transaction alike — and the
    refusing connection never comes back."""
    engine = make_engine(postgres_url, pool_size=1)
    await migrate(engine)
    try:
        store = hot.hot_store(engine)
        now = hot.Sql(select(func.now().label("at")))

        async def poison() -> asyncio.Task[Any]:
            fairy = await engine.raw_connection()
            driver: Any = fairy.driver_connection
            running = asyncio.ensure_future(driver.fetch("SELECT pg_sleep(0.5)"))
            await asyncio.sleep(0.05)  # on the server now
            fairy.close()  # back in the pool, busy
            return running

        running = await poison()
        rows = await store.read(now)
        assert len(rows) == 1 and rows[0]["at"] is not None
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
            await running  # its connection was discarded: the statement ends with it

        running = await poison()
        await store.transaction(hot.insert(_order(40)))
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
            await running
        assert [r["id"] for r in await store.read(hot.ORDER_WITH_PAYMENT,
                                                  order_id="ord_hot40")] == ["ord_hot40"]
        assert store.statements >= 3
    finally:
        await engine.dispose()


async def test_sqlite_commits_a_lone_transaction_on_the_loop_and_a_batch_off_it(
        sqlite_url: str) -> None:
    """The statements run on the event loop's thread, and so does the ``COMMIT`` of a lone
    transaction (the checkpoints, which made it slow, run elsewhere); a batch of several
    commits on the connection's own thread, unless every transaction of it asked to commit
    on the loop."""
    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    seen: list[tuple[str, int]] = []
    fairy = await engine.raw_connection()
    fairy.driver_connection._conn.set_trace_callback(
        lambda sql: seen.append((sql.split()[0].upper(), threading.get_ident())))
    fairy.close()
    loop_thread = threading.get_ident()
    try:
        await store.transaction(hot.insert(_order(20)))
        assert {t for _, t in seen} == {loop_thread}
        assert {"INSERT", "COMMIT"} <= {s for s, _ in seen}
        seen.clear()
        await asyncio.gather(store.steps(hot.insert(_order(21)), commit_on_loop=True),
                             store.steps(hot.insert(_order(22)), commit_on_loop=True))
        assert {t for _, t in seen} == {loop_thread} and "COMMIT" in [s for s, _ in seen]
        seen.clear()
        # a batch where one transaction asked for the loop and one did not: off the loop
        await asyncio.gather(store.steps(hot.insert(_order(23)), commit_on_loop=True),
                             store.transaction(hot.insert(_order(24))))
        assert [s for s, t in seen if t != loop_thread] == ["COMMIT"]
        assert "INSERT" in [s for s, t in seen if t == loop_thread]
        rows = [await store.read(hot.ORDER_WITH_PAYMENT, order_id=f"ord_hot{n}")
                for n in (20, 21, 22, 23, 24)]
        assert [r[0]["id"] for r in rows] == [f"ord_hot{n}" for n in (20, 21, 22, 23, 24)]
    finally:
        await engine.dispose()


def _wal_pages(url: str) -> int:
    """How many pages the WAL holds now, since it last started over (a ``PASSIVE``
    checkpoint's count; it copies them too)."""
    with contextlib.closing(sqlite3.connect(url.split(":///", 1)[1])) as raw:
        busy, pages, _ = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0
    return int(pages)


def _checkpoint_metrics() -> dict[str, float]:
    """The checkpoint series on /metrics (this process's registry)."""
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {"beside": value("minigate_sqlite_checkpoints_total", where="beside"),
            "write_path": value("minigate_sqlite_checkpoints_total", where="write_path"),
            "failed": value("minigate_sqlite_checkpoint_failures_total"),
            "wal_pages": value("minigate_sqlite_wal_pages")}


async def _checkpointing(url: str, monkeypatch: pytest.MonkeyPatch, **knobs: int
                        ) -> tuple[AsyncEngine, hot.HotStore, hot._Checkpointer]:
    """A migrated SQLite engine, its store and the store's checkpointer, with
    :class:`hot._Checkpointer`'s knobs (``EVERY``, ``LIMIT``…) set for the test."""
    for name, value in knobs.items():
        monkeypatch.setattr(hot._Checkpointer, name, value)
    engine = make_engine(url)
    await migrate(engine)
    store = hot.hot_store(engine)
    assert store._checkpointer is not None
    return engine, store, store._checkpointer


async def test_sqlite_checkpoints_run_beside_the_writes_and_keep_the_wal_short(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the store holds the write connection its automatic checkpoint is off; every
    ``EVERY`` write batches a checkpoint runs on the checkpointer's own thread. A
    checkpoint that ends before the next write lets the WAL start over; under a burst of
    writes that never leaves it the time, the WAL still starts over again and again (a
    write batch checkpoints when it is past ``LIMIT``). Given back, the connection checkpoints
    by itself again."""
    engine, store, checkpointer = await _checkpointing(sqlite_url, monkeypatch, EVERY=20,
                                                       LIMIT=300)
    threads: list[str] = []
    lengths: list[int] = []
    checkpoint = hot._Checkpointer._checkpoint

    def spy(self: hot._Checkpointer) -> int:
        threads.append(threading.current_thread().name)
        lengths.append(checkpoint(self))
        return lengths[-1]

    monkeypatch.setattr(hot._Checkpointer, "_checkpoint", spy)
    before = _checkpoint_metrics()
    try:
        await store.transaction(hot.insert(_order(0)))
        conn = store._held.driver_connection._conn
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        for n in range(1, 300):  # each checkpoint ends before the next write
            await store.transaction(hot.insert(_order(n)))
            await checkpointer.idle()
        assert checkpointer.checkpoints == len(threads) == 15
        assert {name.split("_")[0] for name in threads} == {"minigate-checkpoint"}
        # 300 inserts append thousands of pages; the WAL holds the last few's
        assert 0 < _wal_pages(sqlite_url) < 200 and max(lengths) < 300

        lengths.clear()
        for n in range(300, 1500):  # a burst: each write right after the one before
            await store.transaction(hot.insert(_order(n)))
        await checkpointer.idle()
        # 1,200 inserts append about 8,000 pages. The WAL keeps starting over (a length
        # below the one before), mostly because a write batch catches up past LIMIT; how far
        # past LIMIT it gets first depends on how long a checkpoint takes on the machine
        assert len(lengths) >= 40 and sum(lengths) > 20 * 300
        restarts = sum(1 for a, b in zip(lengths, lengths[1:], strict=False) if b < a)
        assert restarts >= 5 and checkpointer.caught_up >= 3, lengths
        assert max(lengths) < 2_500, lengths
        # operators see the same on /metrics
        after = _checkpoint_metrics()
        assert after["beside"] - before["beside"] == checkpointer.checkpoints
        assert after["write_path"] - before["write_path"] == checkpointer.caught_up
        assert after["wal_pages"] == lengths[-1]  # the last checkpoint beside the writes
        async with session_factory(engine)() as session:  # the store gives it back
            assert (await session.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 1000
            assert await session.scalar(select(func.count()).select_from(Order)) == 1500
    finally:
        await engine.dispose()


async def test_sqlite_checkpoints_count_write_batches_and_their_transactions(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint comes after ``EVERY`` write batches or ``EVERY_TRANSACTIONS``
    transactions, whichever is first: 20 lone transactions are neither, one batch of 30
    is the second."""
    engine, store, checkpointer = await _checkpointing(sqlite_url, monkeypatch, EVERY=1000,
                                                       EVERY_TRANSACTIONS=45)
    try:
        for n in range(20):
            await store.transaction(hot.insert(_order(n)))
        await checkpointer.idle()
        assert checkpointer.checkpoints == 0
        await asyncio.gather(*(store.transaction(hot.insert(_order(n)))
                               for n in range(20, 50)))
        await checkpointer.idle()
        assert checkpointer.checkpoints == 1 and checkpointer.wal_pages > 0
    finally:
        await engine.dispose()


async def test_sqlite_a_checkpointer_that_falls_behind_hands_the_checkpoint_to_a_write(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If its checkpoint fails (or finds the WAL past ``LIMIT``), the next write batch
    commits on the connection's thread and checkpoints there before any other write; the
    batch's transactions commit either way, and the WAL starts over."""
    monkeypatch.setattr(hot._Checkpointer, "EVERY", 5)

    def broken(self: hot._Checkpointer) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    assert store._checkpointer is not None
    before = _checkpoint_metrics()
    seen: list[tuple[str, int]] = []
    loop_thread = threading.get_ident()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(hot._Checkpointer, "_checkpoint", broken)
            for n in range(5):
                await store.transaction(hot.insert(_order(n)))
            await store._checkpointer.idle()
            assert store._checkpointer.behind() and store._checkpointer.checkpoints == 0
        store._held.driver_connection._conn.set_trace_callback(
            lambda sql: seen.append((sql.split("(")[0].upper(), threading.get_ident())))
        await store.transaction(hot.insert(_order(5)))
        assert [s for s, t in seen if t != loop_thread] == ["COMMIT", "PRAGMA WAL_CHECKPOINT"]
        assert store._checkpointer.caught_up == 1 and not store._checkpointer.behind()
        after = _checkpoint_metrics()
        assert (after["failed"] - before["failed"], after["write_path"] - before["write_path"],
                after["beside"] - before["beside"]) == (1, 1, 0)
        seen.clear()
        await store.transaction(hot.insert(_order(6)))  # back to the loop; the WAL restarts
        assert {t for _, t in seen} == {loop_thread}
        assert 0 < _wal_pages(sqlite_url) <= 20  # order 6's pages alone
        with contextlib.closing(sqlite3.connect(sqlite_url.split(":///", 1)[1])) as raw:
            assert raw.execute("SELECT count(*) FROM orders").fetchone() == (7,)
    finally:
        await engine.dispose()


async def test_sqlite_a_commit_that_fails_off_the_loop_fails_the_whole_batch(
        sqlite_url: str) -> None:
    """A deferred foreign key is checked at ``COMMIT``: the commit fails on the
    connection's thread, every transaction of the batch fails with it, nothing of the
    batch is written, and the next transaction commits normally."""
    engine = make_engine(sqlite_url)
    await migrate(engine)
    with contextlib.closing(sqlite3.connect(sqlite_url.split(":///", 1)[1])) as raw:
        raw.execute("CREATE TABLE hot_child (id INTEGER PRIMARY KEY, parent VARCHAR(32) "
                    "REFERENCES orders(id) DEFERRABLE INITIALLY DEFERRED)")
        raw.commit()
    child = Table("hot_child", MetaData(), Column("id", Integer, primary_key=True),
                  Column("parent", String(32)))
    orphan = hot.Sql(insert(child).values(parent=bindparam("parent")))

    def orphaned() -> hot.Work[None]:
        yield orphan, {"parent": "ord_none"}  # accepted now, refused at COMMIT

    store = hot.hot_store(engine)
    try:
        results = await asyncio.gather(store.transaction(hot.insert(_order(30))),
                                       store.transaction(orphaned()), return_exceptions=True)
        assert [type(r).__name__ for r in results] == ["IntegrityError", "IntegrityError"]
        assert "FOREIGN KEY" in str(results[0])
        assert await store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot30") == []
        await store.transaction(hot.insert(_order(31)))
        rows = await store.read(hot.ORDER_WITH_PAYMENT, order_id="ord_hot31")
        assert [r["id"] for r in rows] == ["ord_hot31"]
        with contextlib.closing(sqlite3.connect(sqlite_url.split(":///", 1)[1])) as raw:
            assert raw.execute("SELECT count(*) FROM hot_child").fetchone() == (0,)
    finally:
        await engine.dispose()


async def _session_reads(engine: AsyncEngine) -> tuple[int, int]:
    """Through an ORM session: how many orders, and the connection's busy timeout."""
    async with session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(Order))
        busy = (await session.execute(text("PRAGMA busy_timeout"))).scalar()
        return count, busy


async def test_sqlite_keeps_the_connection_between_batches_and_gives_it_back_when_asked(
        sqlite_url: str) -> None:
    """Batch after batch runs on the connection checked out for the first, with no
    ``PRAGMA`` per batch; an ORM session that asks for it gets it at once (not after the
    pool's timeout) with the usual busy timeout, and the store takes it again after."""
    engine = make_engine(sqlite_url)
    await migrate(engine)
    checkouts: list[int] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
    statements: list[str] = []
    store = hot.hot_store(engine)
    try:
        await store.transaction(hot.insert(_order(50)))
        assert len(checkouts) == 1
        fairy = store._held
        assert fairy is not None, "kept after its batch"
        fairy.driver_connection._conn.set_trace_callback(
            lambda sql: statements.append(sql.split()[0].upper()))
        for n in (51, 52, 53):
            await store.transaction(hot.insert(_order(n)))
        assert len(checkouts) == 1
        assert "PRAGMA" not in statements and statements.count("COMMIT") == 3

        assert await asyncio.wait_for(_session_reads(engine), 5) == (4, SQLITE_BUSY_TIMEOUT_MS)
        assert len(checkouts) == 2 and store._held is None

        await store.transaction(hot.insert(_order(54)))
        assert len(checkouts) == 3 and store._held is not None
        with contextlib.closing(sqlite3.connect(sqlite_url.split(":///", 1)[1])) as raw:
            assert raw.execute("SELECT count(*) FROM orders").fetchone() == (5,)
    finally:
        await engine.dispose()


async def test_sqlite_a_session_that_asks_during_a_batch_gets_the_connection_after_it(
        sqlite_url: str) -> None:
    """A session asking for the connection while a batch is being committed waits for
    that batch only, then gets the connection with the usual busy timeout; the batch's
    transaction committed."""
    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    committing, go_on = threading.Event(), threading.Event()
    loop_thread = threading.get_ident()

    def hold_the_commit(sql: str) -> None:
        if sql.upper().startswith("COMMIT") and threading.get_ident() != loop_thread:
            committing.set()
            go_on.wait(10)

    try:
        await store.transaction(hot.insert(_order(60)))  # the store now holds it
        store._held.driver_connection._conn.set_trace_callback(hold_the_commit)
        writing = asyncio.ensure_future(asyncio.gather(  # a batch of two: off the loop
            store.transaction(hot.insert(_order(61))),
            store.transaction(hot.insert(_order(62)))))
        assert await asyncio.to_thread(committing.wait, 5)
        reading = asyncio.ensure_future(_session_reads(engine))
        await asyncio.sleep(0.05)
        assert not reading.done(), "the batch still has the connection"
        assert store._wanted
        go_on.set()
        await asyncio.wait_for(writing, 5)
        assert await asyncio.wait_for(reading, 5) == (3, SQLITE_BUSY_TIMEOUT_MS)
        assert store._held is None and not store._wanted
    finally:
        go_on.set()
        await engine.dispose()


async def test_sqlite_dispose_takes_back_the_kept_connection(sqlite_url: str) -> None:
    """Disposing of the engine closes the connection the store keeps between batches
    (nothing stays open, even without the store's own ``aclose``)."""
    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    await store.transaction(hot.insert(_order(70)))
    conn = store._held.driver_connection._conn
    await engine.dispose()
    assert store._held is None
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


async def test_sqlite_a_session_queued_behind_the_store_is_not_starved(sqlite_url: str) -> None:
    """A session that asks for the connection while the store itself is waiting for it
    (the store's own checkout is under way, so nobody is asked to give it back) queues
    behind the store. After its batch the store sees a checkout still under way and
    gives the connection back, rather than keeping it until the pool's 30-second
    timeout fails the session."""
    engine = make_engine(sqlite_url)
    await migrate(engine)
    store = hot.hot_store(engine)
    try:
        first = await engine.connect()
        await first.execute(text("SELECT 1"))  # it holds the pool's one connection
        writing = asyncio.ensure_future(store.transaction(hot.insert(_order(80))))
        await asyncio.sleep(0.05)  # the store's checkout waits for the connection
        assert store._taking
        reading = asyncio.ensure_future(_session_reads(engine))
        await asyncio.sleep(0.05)  # and the session's, behind it
        await first.close()
        await asyncio.wait_for(writing, 5)
        assert await asyncio.wait_for(reading, 5) == (1, SQLITE_BUSY_TIMEOUT_MS)
        assert engine.sync_engine.pool.waiting == 0
    finally:
        await engine.dispose()


_BACKEND = hot.Sql(select(func.pg_backend_pid().label("pid")))


@pytest.mark.postgres
async def test_postgres_keeps_idle_connections_between_units_and_gives_them_back_when_asked(
        postgres_url: str) -> None:
    """Unit after unit runs on the connection checked out for the first; an ORM session
    that asks gets a connection at once even from a pool of one (the store gives back
    what it keeps idle), and the store checks one out again after."""
    engine = make_engine(postgres_url, pool_size=1)
    checkouts: list[int] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
    store = hot.hot_store(engine)
    try:
        pids = {(await store.read(_BACKEND))[0]["pid"] for _ in range(5)}
        assert len(pids) == 1 and len(checkouts) == 1 and len(store._idle) == 1

        async def session_reads() -> int:
            async with session_factory(engine)() as session:
                return int(await session.scalar(select(func.pg_backend_pid())) or 0)

        assert await asyncio.wait_for(session_reads(), 5) in pids
        assert store._idle == [] and len(checkouts) == 2
        assert (await store.read(_BACKEND))[0]["pid"] in pids
        assert len(checkouts) == 3 and len(store._idle) == 1
    finally:
        await engine.dispose()
    assert store._idle == []  # disposing takes them back (closed with the pool)


@pytest.mark.postgres
async def test_postgres_keeps_a_few_and_none_while_a_checkout_waits(postgres_url: str) -> None:
    """At most PG_KEPT stay idle after a burst; a unit that ends while a session waits for
    the pool gives its connection back instead of keeping it, so the session is served
    (a pool of one, a unit and a session at once)."""
    engine = make_engine(postgres_url, pool_size=hot.PG_KEPT + 2)
    store = hot.hot_store(engine)
    slow = hot.Sql(select(func.pg_sleep(0.1).label("slept")))
    try:
        await asyncio.gather(*(store.read(slow) for _ in range(hot.PG_KEPT + 2)))
        assert len(store._idle) == hot.PG_KEPT
    finally:
        await engine.dispose()
    engine = make_engine(postgres_url, pool_size=1)
    store = hot.hot_store(engine)
    try:
        reading = asyncio.ensure_future(store.read(slow))
        await asyncio.sleep(0.03)  # the store's unit has the pool's one connection

        async def session_reads() -> int:
            async with session_factory(engine)() as session:
                return int(await session.scalar(select(func.count())) or 0)

        assert await asyncio.wait_for(session_reads(), 5) == 1
        await reading
        assert store._idle == []
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_a_kept_connection_the_server_closed_is_dropped(postgres_url: str) -> None:
    """A connection kept idle whose server process has gone (a restart, an administrator's
    ``pg_terminate_backend``) is not used again: the next unit runs on a new one."""
    engine = make_engine(postgres_url, pool_size=2)
    store = hot.hot_store(engine)
    try:
        pid = (await store.read(_BACKEND))[0]["pid"]
        kept = store._idle[0][0].driver_connection
        admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for _ in range(100):  # until the loop has seen the server close it
            if kept.is_closed():
                break
            await asyncio.sleep(0.02)
        assert kept.is_closed()
        rows = await store.read(_BACKEND)
        assert rows[0]["pid"] != pid and len(store._idle) == 1
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_a_connection_goes_back_to_the_pool_after_its_time(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PG_KEPT_SECONDS since it left the pool, a connection goes back at the end of
    its unit (so the pool's recycling applies to it again): with 0 s, every unit checks
    one out."""
    monkeypatch.setattr(hot, "PG_KEPT_SECONDS", 0.0)
    engine = make_engine(postgres_url, pool_size=2)
    checkouts: list[int] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
    store = hot.hot_store(engine)
    try:
        for _ in range(4):
            await store.read(_BACKEND)
        assert len(checkouts) == 4 and store._idle == []
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_a_connection_of_a_disposed_pool_is_not_kept(postgres_url: str) -> None:
    """Disposing of the engine while a unit runs (without the store's own ``aclose``): the
    unit's connection goes back to the pool it came from when the unit ends, not into the
    store's idle list, and the next unit runs on the new pool's connection."""
    engine = make_engine(postgres_url, pool_size=2)
    store = hot.hot_store(engine)
    slow = hot.Sql(select(func.pg_sleep(0.2).label("slept")))
    try:
        reading = asyncio.ensure_future(store.read(slow))
        await asyncio.sleep(0.05)  # the unit is on the server
        await engine.dispose()
        await reading
        assert store._idle == []
        await store.read(_BACKEND)
        assert len(store._idle) == 1
        assert store._idle[0][0]._pool is engine.sync_engine.pool
    finally:
        await engine.dispose()
