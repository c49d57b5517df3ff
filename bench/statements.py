"""``python -m bench statements``: what a checkout's writes cost PostgreSQL, without HTTP.

The core suite's ``DB CPU ms/op`` is the database's share of a whole checkout, measured
under the noise of a full server (a 5-second phase, the machine's drift). This measures the
writes alone, on a fresh database of the machine's PostgreSQL, ``--concurrency`` at a time:

* ``minigate``: the three statements a checkout writes, as the services write them, on the
  lean path (``store/hot.py``) with the product's engine: the order with its
  Idempotency-Key and stored answer and its event (``service/orders.py``), the payment
  row written before the provider call (``service/payments.py``, ``_ensure_payment``) and
  the prepay with the order's move to ``pending`` and its event (``_record_prepay``'s one
  statement);
* ``baseline``: the bare baseline's one ``INSERT`` (``bench/baseline.py``'s ``Store``);
* ``baseline-create``: the baseline of ``bench run --baseline-create``: the order's
  ``INSERT``, the ``SELECT`` of its amount and the checkout's ``INSERT``.

Each case runs ``--repeat`` times, the cases alternating, and each figure is the median of
the repeats: the CPU of every PostgreSQL process per checkout (backends and helpers:
``bench.servers.database_cpu``), this process's CPU per checkout (the driver's share; for
minigate the lean path's too), the statements per checkout, and the WAL written per checkout.
Nothing is judged: it is a probe for changes to the schema or the statements
(``docs/performance.md``, round 15). PostgreSQL only: on SQLite the writes run in the
server's own process, where the core suite's CPU figure already holds them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from bench.servers import (
    PG_DSN,
    Database,
    activity_since,
    cpu_since,
    database_activity,
    database_cpu,
)

CASES = ("minigate", "baseline", "baseline-create")

#: One checkout's writes.
Checkout = Callable[[], Awaitable[None]]
#: A case: its checkout, the statements it has run so far, and how to close it.
Case = tuple[Checkout, Callable[[], int], Callable[[], Awaitable[None]]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--checkouts", type=int, default=3000,
                        help="checkouts per case and repeat (default 3000)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="checkouts in flight at once (default 8)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each case, alternating; figures are medians (default 3)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {','.join(CASES)}")


def _minigate(url: str) -> Case:
    """A checkout's three writes, as ``service/orders.py`` and ``service/payments.py``
    compose them on the lean path (a fresh Idempotency-Key; the order as this process
    created it, so the payment is written only if it is unchanged)."""
    from minigate.domain.events import EventType
    from minigate.domain.ids import new_id, provider_number
    from minigate.providers.base import CreatedPayment
    from minigate.service import orders, payments
    from minigate.service.context import token_hash
    from minigate.store import hot, repo
    from minigate.store.db import make_engine
    from minigate.store.models import IdempotencyRecord, Order, Payment

    engine = make_engine(url)
    store = hot.hot_store(engine)

    async def checkout() -> None:
        now = datetime.now(UTC)
        order = hot.record(
            Order, id=new_id("ord"), merchant_reference="bench-" + secrets.token_hex(8),
            amount_minor=1234, currency="CNY", description="bench order", channel="wechat",
            provider="wechatpay", status="created", client_token_hash=token_hash("ct_bench"),
            refunded_minor=0, refund_reserved_minor=0, metadata_json={"cart": "42"}, flagged=0,
            expires_at=now + timedelta(minutes=30), created_at=now, updated_at=now, version=1)
        # The stored answer is sealed (encrypted) in the product: random text of its size.
        key = hot.values(hot.record(
            IdempotencyRecord, scope="merchant", key=secrets.token_hex(16),
            request_hash=secrets.token_hex(32), state="done", recovery_point="done",
            resource_id=order.id, owner="bench", response_status=201,
            response_body=secrets.token_urlsafe(640), locked_until=now, created_at=now))
        event = repo.event_values(EventType.ORDER_CREATED, now, order_id=order.id,
                                  data={"amount": "12.34"}, webhooks=False)

        def create() -> hot.Work[None]:
            yield orders._CREATE_FRESH, [key, hot.values(order), event]

        await store.steps(create())
        payment = hot.record(
            Payment, id=new_id("pay"), order_id=order.id, provider="wechatpay",
            provider_order_no=provider_number(), status="created",
            openid="o" + secrets.token_hex(14), client_params=None, checks=0, created_at=now,
            updated_at=now, next_check_at=now + timedelta(hours=1))
        if await store.steps(payments._insert_if_unchanged(payment, order.version)) != 1:
            raise RuntimeError("the payment row was not written")
        wechat = {"timeStamp": str(int(now.timestamp())), "nonceStr": secrets.token_hex(16),
                  "package": "prepay_id=wx" + secrets.token_hex(14), "signType": "RSA",
                  "paySign": secrets.token_urlsafe(256)}
        moved = await store.steps(payments._prepay_fast(
            order, payment, CreatedPayment(wechat=wechat), {"wechat": wechat}, now))
        if moved is not True:
            raise RuntimeError("the order did not move to pending")

    async def close() -> None:
        await store.aclose()
        await engine.dispose()

    return checkout, lambda: store.statements, close


async def _baseline(url: str, create: bool) -> Case:
    """The bare baseline's writes, with its own ``Store`` (``bench/baseline.py``)."""
    from bench.baseline import Store

    store = Store(url)
    await store.open()
    ran = 0

    async def checkout() -> None:
        nonlocal ran
        number = "MG" + secrets.token_hex(13)
        amount = 1234
        if create:
            await store.insert("bare_order", (number, amount, "bench-" + secrets.token_hex(8),
                                              time.time()))
            found = await store.amount_of(number)
            if found != amount:
                raise RuntimeError("the order was not read back")
            ran += 2
        params = json.dumps({"package": "prepay_id=wx" + secrets.token_hex(14),
                             "paySign": secrets.token_urlsafe(256)})
        await store.insert("bare_checkout", (number, amount, "o" + secrets.token_hex(14),
                                             params, time.time()))
        ran += 1

    return checkout, lambda: ran, store.close


async def _measure(case: Case, n: int, concurrency: int, dsn: str) -> dict[str, float]:
    checkout, statements, _ = case
    todo: Iterator[int] = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            await checkout()

    ran = statements()
    activity = await database_activity(dsn)
    db_before, cpu0, t0 = database_cpu(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu1, t1, db_after = time.process_time(), time.perf_counter(), database_cpu()
    wrote = activity_since(activity, await database_activity(dsn), n)
    return {"db_cpu_ms": 1000 * cpu_since(db_before, db_after) / n,
            "client_cpu_ms": 1000 * (cpu1 - cpu0) / n,
            "wall_ms": 1000 * (t1 - t0) / n,
            "statements": (statements() - ran) / n,
            "wal_kb": wrote["wal_kb_per_op"] or 0.0}


async def run(checkouts: int, concurrency: int, repeat: int, cases: list[str],
              workdir: Path, dsn: str = PG_DSN,
              progress: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Each case on a database of its own, ``repeat`` times alternating; the medians."""
    databases = {case: Database("postgres", workdir, dsn) for case in cases}
    made: dict[str, Case] = {}
    runs: dict[str, list[dict[str, float]]] = {case: [] for case in cases}
    try:
        for case, db in databases.items():
            await db.create(minigate_schema=case == "minigate")
            made[case] = (_minigate(db.url) if case == "minigate"
                          else await _baseline(db.url, create=case == "baseline-create"))
            for _ in range(min(50, checkouts)):  # warm: connections, prepared statements
                await made[case][0]()
        for r in range(repeat):
            for case in cases:
                figures = await _measure(made[case], checkouts, concurrency, dsn)
                runs[case].append(figures)
                progress(f"  {case:<16} repeat {r + 1}/{repeat}: " + _line(figures))
    finally:
        for _, _, close in made.values():
            await close()
        for db in databases.values():
            await db.drop()
    return {case: {k: statistics.median(f[k] for f in figures) for k in figures[0]}
            for case, figures in runs.items() if figures}


def _line(f: dict[str, float]) -> str:
    return (f"DB CPU {f['db_cpu_ms']:.3f} ms, client CPU {f['client_cpu_ms']:.3f} ms, "
            f"wall {f['wall_ms']:.3f} ms, {f['statements']:g} statements, "
            f"WAL {f['wal_kb']:.2f} KB per checkout")


def table(medians: dict[str, dict[str, float]]) -> str:
    """The medians as a Markdown table, with each case's DB CPU against the baseline's."""
    base = medians.get("baseline", {}).get("db_cpu_ms")
    lines = ["| case | statements | DB CPU ms | ÷ baseline | client CPU ms | wall ms | WAL KB |",
             "|---|---|---|---|---|---|---|"]
    for case, f in medians.items():
        ratio = f"{f['db_cpu_ms'] / base:.2f}" if base else "–"
        lines.append(f"| {case} | {f['statements']:g} | {f['db_cpu_ms']:.3f} | {ratio} | "
                     f"{f['client_cpu_ms']:.3f} | {f['wall_ms']:.3f} | {f['wal_kb']:.2f} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    import tempfile

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or set(cases) - set(CASES):
        raise SystemExit(f"--cases: a comma-separated subset of {','.join(CASES)}")
    if args.checkouts < 1 or args.concurrency < 1 or args.repeat < 1:
        raise SystemExit("--checkouts, --concurrency and --repeat must be at least 1")
    server = urlsplit(PG_DSN)  # host and port only: a DSN may carry a password
    print(f"bench statements: {args.checkouts} checkouts × {args.repeat} per case, "
          f"{args.concurrency} at a time, on PostgreSQL at {server.hostname}:{server.port or 5432}")
    with tempfile.TemporaryDirectory(prefix="minigate-statements-") as tmp:
        medians = asyncio.run(run(args.checkouts, args.concurrency, args.repeat, cases,
                                  Path(tmp)))
    print(table(medians))
    return 0
