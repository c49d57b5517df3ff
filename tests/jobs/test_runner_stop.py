"""Stopping the job runner ends its loop, even when a kick arrives at the same moment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from minigate.jobs.runner import JobRunner
from tests.support import Harness


async def _idle_runner(h: Harness, monkeypatch: pytest.MonkeyPatch) -> JobRunner:
    """A runner whose passes find nothing, parked in its wait for a kick."""
    runner = JobRunner(h.ctx, h.runtime.http, poll_interval=30.0)
    passes = asyncio.Event()

    async def nothing_due(*_: Any) -> int:
        passes.set()
        return 0

    monkeypatch.setattr(runner, "run_once", nothing_due)
    runner.start()
    await passes.wait()
    for _ in range(5):  # from the pass to the wait
        await asyncio.sleep(0)
    return runner


async def test_stop_as_a_kick_arrives_ends_the_loop(sqlite_gateway: Harness,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The kick wakes the wait in the same loop turn as the cancellation: on Python 3.11
    ``asyncio.wait_for`` returned the kick and dropped the cancellation, and the loop
    went on for ever (seen as a test run that hung in ``Runtime.stop``)."""
    runner = await _idle_runner(sqlite_gateway, monkeypatch)
    task = runner._task
    assert task is not None and not task.done()
    sqlite_gateway.ctx.wakeup.set()
    stopped = await _stops(runner)
    assert stopped and task.cancelled()
    assert not runner.alive


async def test_stop_while_idle_ends_the_loop(sqlite_gateway: Harness,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    runner = await _idle_runner(sqlite_gateway, monkeypatch)
    task = runner._task
    assert await _stops(runner)
    assert task is not None and task.cancelled()


async def _stops(runner: JobRunner) -> bool:
    """Does ``stop()`` return? (10 s is a guard against hanging the run, not a measure.)"""
    task = runner._task
    stopping = asyncio.create_task(runner.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)
    if not done:  # leave nothing running behind the test
        stopping.cancel()
        if task is not None:
            task.cancel()
    return stopping in done
