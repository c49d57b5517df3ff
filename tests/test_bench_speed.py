"""The core-speed probe and the event-loop pinning of the core suite (bench/speed.py), on
real processes and threads (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench import speed

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                reason="pinning needs two CPUs")

CHILD = textwrap.dedent("""
    import sys, threading, time
    def spin():
        while True:
            time.sleep(0.05)
    threading.Thread(target=spin, daemon=True).start()
    print("one", flush=True)
    sys.stdin.readline()
    threading.Thread(target=spin, daemon=True).start()  # started by the pinned thread
    print("two", flush=True)
    sys.stdin.readline()
""")


def _threads(pid: int) -> dict[int, set[int]]:
    return {int(t): os.sched_getaffinity(int(t)) for t in os.listdir(f"/proc/{pid}/task")}


def test_the_event_loop_is_pinned_and_its_other_threads_stay_free() -> None:
    cpu, anywhere = speed.server_cpu(), os.sched_getaffinity(0)
    assert cpu is not None and speed.other_cpus() == anywhere - {cpu}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,  # noqa: S603
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "one"
        speed.pin_event_loop(child.pid, cpu)
        threads = _threads(child.pid)
        assert threads.pop(child.pid) == {cpu} and list(threads.values()) == [anywhere]
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "two"
        late = set(_threads(child.pid)) - set(threads) - {child.pid}
        assert len(late) == 1 and all(os.sched_getaffinity(t) == {cpu} for t in late)
        speed.pin_event_loop(child.pid, cpu)  # as before the next phase: free again
        threads = _threads(child.pid)
        assert threads.pop(child.pid) == {cpu}
        assert len(threads) == 2 and all(v == anywhere for v in threads.values())
    finally:
        child.kill()
        child.wait()


def test_the_probe_records_its_unit_on_its_core(tmp_path: Path) -> None:
    cpu = speed.server_cpu()
    assert cpu is not None
    before = time.monotonic()
    probe = speed.CoreSpeed(cpu, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while probe.mean_ms(before, time.monotonic()) is None:  # until ten units are in
            assert time.monotonic() < deadline, "the probe recorded nothing"
            time.sleep(0.2)
        mean = probe.mean_ms(before, time.monotonic())
        assert mean is not None and mean > 0
        assert os.sched_getaffinity(probe._proc.pid) == {cpu}  # on the measured core
        assert probe.mean_ms(before - 100, before - 50) is None  # nothing before it started
        path = probe.path
        assert path.stat().st_size % 16 == 0
    finally:
        probe.close()
    assert not path.exists()
