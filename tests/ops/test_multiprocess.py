"""Metrics with several processes: PROMETHEUS_MULTIPROC_DIR adds them up; a worker can
serve its own counters."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from minigate.observability.metrics import Snapshot, exposition
from tests.ops.process import clean_env, free_port, start, stop

COUNT_ONE = """
from minigate.observability import metrics
metrics.NOTIFICATIONS.labels("latipay", "paid").inc()
metrics.PROVIDER_CALL_SECONDS.labels("latipay", "create_payment").observe(0.2)
"""


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_counters_of_several_processes_add_up(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT_ONE], env=env, check=True,  # noqa: S603
                       timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = exposition(Snapshot(database_up=True, info={"version": "x", "mode": "sandbox"})).decode()
    assert _value(text, "minigate_notifications_total", provider="latipay", outcome="paid") == 2
    assert _value(text, "minigate_provider_call_seconds_count", provider="latipay",
                  operation="create_payment") == 2
    assert _value(text, "minigate_database_up") == 1


def test_a_worker_serves_its_counters(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, "worker", "--metrics-port", str(port),
                 MINIGATE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
                 MINIGATE_MODE="sandbox")
    try:
        deadline = time.monotonic() + 30
        passes = 0.0
        while time.monotonic() < deadline and passes < 1:
            assert proc.poll() is None, proc.communicate()
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                passes = _value(text, "minigate_job_passes_total")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert passes >= 1
    finally:
        stop(proc)
