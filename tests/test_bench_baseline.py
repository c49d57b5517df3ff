"""The bare baseline's optional create request (``bench run --baseline-create``), through
the real baseline process over real HTTP on a real SQLite file: the load generator's
checkout creates an order first, and the checkout charges the amount stored with it, not
one the client sends. And its collector count, which the bench reads around each phase.
Nothing is timed."""

from __future__ import annotations

import asyncio
import gc
import queue
import sqlite3
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest

from bench.cli import _pairs_during
from bench.load import Runner, Spec, _run
from bench.providers import PROVIDERS
from bench.rawhttp import RawClient
from bench.servers import Server, full_collections, loop_holds, sqlite_checkpoints
from minigate.config import GC_THRESHOLD, Settings
from minigate.observability.metrics import EVENT_LOOP_LAG, SQLITE_CHECKPOINTS


@pytest.fixture
def baseline(tmp_path: Path) -> tuple[Server, Path]:
    path = tmp_path / "baseline.db"
    server = Server("baseline", f"sqlite+aiosqlite:///{path}", tmp_path)
    server.start()
    try:
        yield server, path
    finally:
        server.stop()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_a_created_order_is_charged_its_stored_amount(baseline: tuple[Server, Path]) -> None:
    server, path = baseline
    with httpx.Client(base_url=server.base, timeout=10) as http:
        r = http.post("/bare/orders", json={"amount_minor": 4321, "merchant_reference": "r-1"})
        assert r.status_code == 201, r.text
        number = r.json()["number"]
        code = http.post("/sandbox/wallet/login", json={"user": "u-1"}).json()["code"]
        # the client cannot name another amount: the body has none, the order's is used
        r = http.post("/bare/checkout/latipay", json={"login_code": code, "number": number})
        assert r.status_code == 200, r.text
        assert r.json()["payment"]
        code = http.post("/sandbox/wallet/login", json={"user": "u-2"}).json()["code"]
        r = http.post("/bare/checkout/latipay", json={"login_code": code, "number": "MGO-none"})
        assert r.status_code == 404
    assert _rows(path, "SELECT number, amount_minor, merchant_reference FROM bare_order") == [
        (number, 4321, "r-1")]
    assert _rows(path, "SELECT amount_minor FROM bare_checkout") == [(4321,)]


def test_both_servers_report_their_full_collections(baseline: tuple[Server, Path]) -> None:
    """The baseline answers its collector's count on ``/bare/gc``; minigate's comes from
    prometheus_client's exposition, which ``full_collections`` reads."""
    server, _ = baseline
    count = server.full_collections()
    assert isinstance(count, int) and count >= 0
    gc.disable()  # no collection between the count and the exposition
    try:
        expected = gc.get_stats()[2]["collections"]
        assert full_collections(generate_latest(REGISTRY).decode()) == expected
    finally:
        gc.enable()
    assert full_collections("python_gc_collections_total{generation=\"1\"} 4.0\n") is None
    assert Server("worker", "", server.logdir).full_collections() is None


def test_the_baseline_collects_as_often_as_minigate(baseline: tuple[Server, Path]) -> None:
    """Its lifespan takes minigate's collector setting (``settle_heap`` at the default
    ``gc_threshold``), so neither server's full collections come more often by setting."""
    server, _ = baseline
    r = httpx.get(f"{server.base}/bare/gc", timeout=5)
    assert r.json()["threshold"][0] == GC_THRESHOLD == Settings.model_fields["gc_threshold"].default != 700


def test_both_servers_report_their_event_loop_holds(baseline: tuple[Server, Path]) -> None:
    """The baseline counts them on ``/bare/gc`` with minigate's own monitor; minigate's come
    from its histogram on ``/metrics``, which ``loop_holds`` reads (the count above a bound
    is the count minus that bound's bucket)."""
    server, _ = baseline
    holds = server.loop_holds()
    assert holds is not None and holds[0] >= holds[1] >= 0
    before = loop_holds(generate_latest(REGISTRY).decode())
    assert before is not None
    for lag in (0.001, 0.03, 0.2):  # one under 25 ms, one over 25, one over 100
        EVENT_LOOP_LAG.observe(lag)
    after = loop_holds(generate_latest(REGISTRY).decode())
    assert after == (before[0] + 2, before[1] + 1)
    assert loop_holds("python_gc_collections_total{generation=\"1\"} 4.0\n") is None
    assert _pairs_during([(5, 1), (2, 0)], [(9, 2), (2, 0)]) == (4, 1)
    assert _pairs_during([(5, 1), None], [(9, 2), (2, 0)]) is None


def test_the_bench_reads_minigates_sqlite_checkpoints(tmp_path: Path) -> None:
    """By where they ran, from ``minigate_sqlite_checkpoints_total`` (0 before the first);
    the baseline cannot say."""
    before = sqlite_checkpoints(generate_latest(REGISTRY).decode())
    SQLITE_CHECKPOINTS.labels("beside").inc(3)
    SQLITE_CHECKPOINTS.labels("write_path").inc()
    after = sqlite_checkpoints(generate_latest(REGISTRY).decode())
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)
    assert sqlite_checkpoints("python_gc_collections_total{generation=\"1\"} 4.0\n") == (0, 0)
    assert Server("baseline", "", tmp_path).sqlite_checkpoints() is None


@pytest.mark.parametrize("create", [False, True])
def test_the_load_generator_sends_the_create_request_only_when_asked(
        baseline: tuple[Server, Path], create: bool) -> None:
    server, path = baseline
    provider = PROVIDERS["latipay"]
    spec = Spec("checkout", "baseline", [server.base], [""], provider="latipay",
                baseline_create=create)

    async def two_checkouts() -> None:
        client = RawClient()
        runner = Runner(spec, provider, client, None)
        try:
            for i in range(2):
                await runner.op(i)
        finally:
            await client.aclose()

    asyncio.run(two_checkouts())
    assert len(_rows(path, "SELECT * FROM bare_checkout")) == 2
    assert len(_rows(path, "SELECT * FROM bare_order")) == (2 if create else 0)
    if create:  # each checkout charged its own order's amount
        assert _rows(path, "SELECT DISTINCT amount_minor FROM bare_checkout") == [
            (provider.amount_minor,)]


def test_a_phase_reports_the_load_generator_s_own_loop_holds(
        baseline: tuple[Server, Path]) -> None:
    """A short closed-loop phase through the load process's entry (``_run``) against the
    real baseline: its result carries the generator's loop holds, as a pair of counts
    (over 25 ms, over 100 ms) and the longest, which the report shows beside the
    server's."""
    server, _ = baseline
    spec = Spec("checkout", "baseline", [server.base], [""], provider="latipay",
                concurrency=2, duration=0.5)
    sent: queue.Queue[tuple[object, ...]] = queue.Queue()
    raw = asyncio.run(_run(spec, sent))
    assert raw["latencies"] and raw["errors"] == 0
    over_25, over_100 = raw["client_holds"]
    assert over_25 >= over_100 >= 0
    assert raw["client_max_hold_ms"] >= 0
    assert ("started",) in [sent.get_nowait() for _ in range(sent.qsize())]
