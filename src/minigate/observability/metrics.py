"""Prometheus metrics (``prometheus-client``), described in docs/operations.md.

Two kinds:

* **Counters and histograms** counted where things happen (notifications, provider calls,
  order transitions, refunds, webhook deliveries, job passes, database outages). With
  several processes (``minigate serve`` workers, ``minigate worker``) on one host, set
  ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by all of them *before* they
  start: each process writes its values there and ``/metrics`` adds them up.
* **Gauges read from the database at scrape time** (outbox lag, open payments and the
  oldest one's age, database up, schema at head, certificate expiry): every process sees
  the same database, so these are computed by whichever process answers the scrape, and
  are right whatever the number of processes.

Order transitions and refund outcomes are counted when their transaction commits (a
rolled-back duplicate counts nothing): :func:`count_on_commit` parks them on the session.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

NOTIFICATIONS = Counter(
    "minigate_notifications", "Provider notifications by provider and outcome.",
    ["provider", "outcome"])
NOTIFICATION_REJECTIONS = Counter(
    "minigate_notification_rejections", "Notifications that failed verification, by reason.",
    ["provider", "reason"])
NOTIFICATION_SECONDS = Histogram(
    "minigate_notification_seconds", "Time to handle one provider notification.",
    ["provider"], buckets=LATENCY_BUCKETS)
PROVIDER_CALLS = Counter(
    "minigate_provider_calls", "Calls to providers by provider, operation and outcome.",
    ["provider", "operation", "outcome"])
PROVIDER_CALL_SECONDS = Histogram(
    "minigate_provider_call_seconds", "Provider call latency by provider and operation.",
    ["provider", "operation"], buckets=LATENCY_BUCKETS)
ORDER_TRANSITIONS = Counter(
    "minigate_order_transitions", "Committed order status changes, by new status.",
    ["to_status"])
REFUNDS = Counter(
    "minigate_refunds", "Refunds by outcome (requested, succeeded, failed).", ["outcome"])
WEBHOOK_DELIVERIES = Counter(
    "minigate_webhook_deliveries", "Merchant webhook delivery attempts by outcome.", ["outcome"])
JOB_PASSES = Counter("minigate_job_passes", "Job runner passes that completed.")
JOB_PASS_FAILURES = Counter("minigate_job_pass_failures", "Job runner passes that failed.")
JOB_ERRORS = Counter("minigate_job_errors", "Single jobs that failed, by kind.", ["job"])
JOB_LAST_PASS = Gauge(
    "minigate_job_last_pass_timestamp_seconds", "When a job runner last completed a pass.",
    multiprocess_mode="max")
DATABASE_UNAVAILABLE = Counter(
    "minigate_database_unavailable",
    "Requests, notifications and job passes that met an unavailable database.", ["where"])
SQLITE_CHECKPOINTS = Counter(
    "minigate_sqlite_checkpoints",
    "SQLite WAL checkpoints by where they ran: 'beside' the writes (their own connection "
    "and thread) or on the 'write_path' (a write batch caught up with a WAL past the "
    "limit).", ["where"])
SQLITE_CHECKPOINT_FAILURES = Counter(
    "minigate_sqlite_checkpoint_failures",
    "SQLite WAL checkpoints beside the writes that failed (the next write batch "
    "checkpoints instead).")
SQLITE_WAL_PAGES = Gauge(
    "minigate_sqlite_wal_pages",
    "Pages in the SQLite WAL when the last checkpoint beside the writes ran (max over "
    "live processes).", multiprocess_mode="livemax")
#: From a millisecond (a loop never runs a timer exactly on time) to seconds.
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EVENT_LOOP_LAG = Histogram(
    "minigate_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 50 ms: the time it was held (CPU-bound "
    "work, a blocking call, a collection) or starved of CPU.", buckets=LOOP_LAG_BUCKETS)

#: Verification failure reasons are free text; the label is one of a few kinds.
_REJECTION_KINDS = (
    ("certificate", "certificates_unavailable"), ("secret configured", "not_configured"),
    ("sign", "bad_signature"), ("signature", "bad_signature"),
    ("timestamp", "bad_timestamp"), ("window", "bad_timestamp"),
    ("decrypt", "does_not_decrypt"), ("another merchant", "wrong_merchant"),
    ("required", "missing_field"), ("no ", "missing_field"), ("missing", "missing_field"),
)


def rejection_kind(reason: str) -> str:
    lowered = reason.lower()
    for needle, kind in _REJECTION_KINDS:
        if needle in lowered:
            return kind
    return "malformed"


def notification_handled(provider: str, outcome: str, started: float,
                         reason: str | None = None) -> None:
    NOTIFICATIONS.labels(provider, outcome).inc()
    NOTIFICATION_SECONDS.labels(provider).observe(time.perf_counter() - started)
    if reason is not None:
        NOTIFICATION_REJECTIONS.labels(provider, rejection_kind(reason)).inc()


def job_pass_done() -> None:
    JOB_PASSES.inc()
    JOB_LAST_PASS.set_to_current_time()


def job_pass_failed(database_down: bool) -> None:
    JOB_PASS_FAILURES.inc()
    if database_down:
        count_database_unavailable("jobs")


def count_database_unavailable(where: str) -> None:
    """Count one request, notification or job pass that met an unavailable database."""
    DATABASE_UNAVAILABLE.labels(where).inc()


# -- counted at commit -----------------------------------------------------------------

_PENDING = "minigate_metrics"


def count_on_commit(session: Any, counter: Counter, *labels: str) -> None:
    """Increment ``counter`` when ``session``'s transaction commits (sync or async session)."""
    info = session.info
    info.setdefault(_PENDING, []).append((counter, labels))


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for counter, labels in session.info.pop(_PENDING, ()):
        (counter.labels(*labels) if labels else counter).inc()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


# -- read from the database at scrape time ----------------------------------------------

@dataclass
class Snapshot:
    """Gauges read from the database (and the configuration) for one scrape."""

    database_up: bool = False
    schema_at_head: bool = False
    outbox_pending: int = 0
    outbox_lag_seconds: float = 0.0
    open_payments: dict[str, tuple[int, float]] = field(default_factory=dict)
    open_refunds: int = 0
    certificates: list[tuple[str, str, float]] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        s = self.snapshot
        yield _gauge("minigate_database_up", "1 when the database answered this scrape.",
                     float(s.database_up))
        yield _gauge("minigate_schema_at_head",
                     "1 when the database schema is at this minigate's head revision.",
                     float(s.schema_at_head))
        yield _gauge("minigate_outbox_pending", "Merchant events waiting for delivery.",
                     s.outbox_pending)
        yield _gauge("minigate_outbox_lag_seconds",
                     "Age of the oldest merchant event not yet delivered (0 when none).",
                     s.outbox_lag_seconds)
        count = GaugeMetricFamily("minigate_payments_open",
                                  "Payments not yet settled, by status.", labels=["status"])
        age = GaugeMetricFamily("minigate_payment_oldest_open_age_seconds",
                                "Age of the oldest unsettled payment, by status.",
                                labels=["status"])
        for status in ("created", "pending", "unknown"):
            n, oldest = s.open_payments.get(status, (0, 0.0))
            count.add_metric([status], n)
            age.add_metric([status], oldest)
        yield count
        yield age
        yield _gauge("minigate_refunds_open", "Refunds sent but not yet settled.",
                     s.open_refunds)
        certs = GaugeMetricFamily("minigate_certificate_expiry_timestamp_seconds",
                                  "When a configured or fetched certificate expires.",
                                  labels=["provider", "certificate"])
        for provider, name, expires in s.certificates:
            certs.add_metric([provider, name], expires)
        yield certs
        info = GaugeMetricFamily("minigate_build_info", "Version and mode of this minigate.",
                                 labels=sorted(s.info))
        info.add_metric([s.info[k] for k in sorted(s.info)], 1.0)
        yield info


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


async def read_snapshot(runtime: Any, timeout: float = 3.0) -> Snapshot:
    """The database gauges, as seen now. A database that does not answer within
    ``timeout`` gives ``minigate_database_up 0`` (and the scrape still answers)."""
    from minigate import __version__
    from minigate.domain.events import DELIVERABLE
    from minigate.preflight import schema_state
    from minigate.store.models import Event, Payment, Refund

    snap = Snapshot(info={"version": __version__,
                          "mode": "sandbox" if runtime.sandbox_mode else "live"})
    snap.certificates = certificate_expiries(runtime)
    now = runtime.clock.now()
    try:
        async with asyncio.timeout(timeout):
            state = await schema_state(runtime.engine)
            snap.schema_at_head = state.at_head
            async with runtime.ctx.sessions() as session:
                pending, oldest = (await session.execute(
                    select(func.count(), func.min(Event.created_at))
                    .where(Event.delivery_status == "pending",
                           Event.type.in_([t.value for t in DELIVERABLE])))).one()
                snap.outbox_pending = int(pending)
                snap.outbox_lag_seconds = _age(now, oldest)
                rows = await session.execute(
                    select(Payment.status, func.count(), func.min(Payment.created_at))
                    .where(Payment.status.in_(["created", "pending", "unknown"]))
                    .group_by(Payment.status))
                snap.open_payments = {status: (int(n), _age(now, first))
                                      for status, n, first in rows}
                snap.open_refunds = int((await session.execute(
                    select(func.count()).select_from(Refund)
                    .where(Refund.status.in_(["pending", "unknown"])))).scalar_one())
        snap.database_up = True
    except Exception:  # noqa: BLE001 - any failure here is "the database did not answer"
        snap.database_up = False
        count_database_unavailable("metrics")
    return snap


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


def certificate_expiries(runtime: Any) -> list[tuple[str, str, float]]:
    """(provider, certificate, expiry as Unix time) of every certificate file configured
    (WeChat Pay API client certificates)."""
    from minigate.certificates import configured_certificates

    return [(provider, name, cert.not_valid_after_utc.timestamp())
            for provider, name, cert in configured_certificates(runtime.settings)]


def counted_registry() -> CollectorRegistry:
    """This process's counters, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def exposition(snapshot: Snapshot) -> bytes:
    """The text exposition of every metric: this process's (or, in multiprocess mode,
    every process's) counters and the snapshot's gauges."""
    scraped = CollectorRegistry()
    scraped.register(SnapshotCollector(snapshot))
    return generate_latest(counted_registry()) + generate_latest(scraped)


def serve_process_metrics(host: str, port: int) -> None:
    """``minigate worker --metrics-port``: the counters on their own small HTTP server (a
    thread), for a worker whose host has no API process to scrape."""
    start_http_server(port, addr=host, registry=counted_registry())


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "gauge": ("",)}


def metric_names() -> Iterator[str]:
    """Every series name /metrics can show (alert rules and dashboards are checked
    against it)."""
    counted: list[Collector] = [
        NOTIFICATIONS, NOTIFICATION_REJECTIONS, NOTIFICATION_SECONDS, PROVIDER_CALLS,
        PROVIDER_CALL_SECONDS, ORDER_TRANSITIONS, REFUNDS, WEBHOOK_DELIVERIES, JOB_PASSES,
        JOB_PASS_FAILURES, JOB_ERRORS, JOB_LAST_PASS, DATABASE_UNAVAILABLE, EVENT_LOOP_LAG,
        SQLITE_CHECKPOINTS, SQLITE_CHECKPOINT_FAILURES, SQLITE_WAL_PAGES,
        SnapshotCollector(Snapshot(info={"version": "", "mode": ""}))]
    for collector in counted:
        for family in collector.collect():
            for suffix in _SUFFIXES[family.type]:
                yield family.name + suffix
