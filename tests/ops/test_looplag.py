"""Event-loop lag (``minigate_event_loop_lag_seconds``): a loop held on purpose is seen, by
about as long as it was held, and the measuring stops with the runtime. The holds are
deliberate (``time.sleep`` on the loop); nothing here times minigate's own work."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

from minigate.observability.looplag import INTERVAL, LoopLag
from tests.ops.live import live_app

HOLD = 0.3


async def _hold_the_loop(seconds: float) -> None:
    await asyncio.sleep(2 * INTERVAL)  # the timer is running
    time.sleep(seconds)  # noqa: ASYNC251 - the point: nothing else runs meanwhile
    await asyncio.sleep(2 * INTERVAL)  # the late wake-up is observed


async def test_a_held_loop_is_seen_by_about_as_long_as_it_was_held() -> None:
    seen: list[float] = []
    lag = LoopLag(seen.append)
    lag.start()
    try:
        await _hold_the_loop(HOLD)
    finally:
        await lag.stop()
    # The wake-up due next after the hold began came at least HOLD - INTERVAL late.
    assert max(seen) >= HOLD - INTERVAL
    assert all(v >= 0 for v in seen)
    count = len(seen)
    await asyncio.sleep(3 * INTERVAL)
    assert len(seen) == count  # stopped: no more wake-ups


def _lag_over(text: str, bound: str) -> float:
    """Observations above ``bound`` seconds: the count minus the bucket at that bound."""
    count = bucket = None
    for family in text_string_to_metric_families(text):
        if family.name != "minigate_event_loop_lag_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_bucket") and sample.labels["le"] == bound:
                bucket = sample.value
    assert count is not None and bucket is not None, "the histogram is not on /metrics"
    return count - bucket


async def test_the_runtime_publishes_the_lag_on_metrics(sqlite_url: str) -> None:
    token = "ops-metrics-token"
    async with live_app(sqlite_url, metrics_token=token) as (runtime, http):
        headers = {"Authorization": f"Bearer {token}"}
        before = _lag_over((await http.get("/metrics", headers=headers)).text, "0.1")
        await _hold_the_loop(HOLD)
        after = _lag_over((await http.get("/metrics", headers=headers)).text, "0.1")
        assert after - before >= 1  # the hold, in the bucket above 100 ms
        assert runtime.loop_lag.running
    assert not runtime.loop_lag.running  # stopped with the runtime
