"""How fast the measured server's core is running, phase by phase, and the pinning that
makes "its core" one core.

Why (round 18 of ``docs/performance.md``): on this project's 2-core VMs each virtual
CPU switches, every few seconds and independently of the other, between two speeds about
2× apart (a fixed piece of Python took 7.5 ms or 13–16 ms of its own CPU time, with no
steal counted). A 5-second phase of one server and the next of the other can land in
different states, so the same code gave CPU per checkout of 5.3 and 9.4 ms in two rounds
of one process, and a throughput ratio that swung by 0.4.

So in the core suite:

* the measured server's event-loop thread is pinned to one CPU (:func:`pin_event_loop`;
  its other threads, e.g. SQLite's checkpointer, and PostgreSQL stay free), and the load
  generator to the others (:func:`other_cpus`);
* a **speed probe** (``python -m bench.speed CPU FILE``), pinned to that same CPU, runs a
  fixed piece of Python (:func:`unit`, about 1 ms) every :data:`INTERVAL` seconds and
  records how much CPU time it took. Its mean over a phase (the tenth at each end left
  out) is the core's speed during that phase (:meth:`CoreSpeed.mean_ms`). In a check
  beside a CPU-bound Python loop on the same core, over 5-second windows the loop's CPU
  per iteration ÷ the probe's stayed within ±4 % while both ran up to 1.7× slower or
  faster (correlation 0.99).

:mod:`bench.targets` uses it to adjust each round's minigate ÷ baseline ratio for the
two phases' core speeds; the raw ratio stays in the report beside it.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from json import dumps as _dumps
from pathlib import Path

#: Seconds between two probe units: about 1–2 % of the core, for both servers alike.
INTERVAL = 0.08
_RECORD = struct.Struct("<dd")  # time.monotonic() at the unit's end, its CPU ms


def unit() -> int:
    """The probe's fixed work: JSON encoding of small dicts (C) driven from a Python loop,
    the mix a request handler runs."""
    total = 0
    for i in range(300):
        total += len(_dumps({"id": i, "name": "order", "amount": i * 7}))
    return total


def server_cpu() -> int | None:
    """The CPU the measured server's event loop is pinned to (the highest this process may
    use), or None on a one-CPU machine, where there is nothing to separate."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if len(cpus) > 1 else None


def other_cpus() -> set[int] | None:
    """Every CPU but :func:`server_cpu`'s (for the load generator), or None."""
    cpu = server_cpu()
    return None if cpu is None else set(os.sched_getaffinity(0)) - {cpu}


def pin_event_loop(pid: int, cpu: int) -> None:
    """Pin ``pid``'s main thread (its event loop) to ``cpu`` and let every other thread of
    it run anywhere. Threads inherit their creator's CPUs, so a thread the event loop
    started since the last call (a thread pool's, SQLite's checkpointer) is set free
    again here; call it before each phase."""
    anywhere = os.sched_getaffinity(0) | {cpu}
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return  # gone: the phase will say so
    for tid in tids:
        try:
            os.sched_setaffinity(tid, {cpu} if tid == pid else anywhere)
        except OSError:
            continue  # a thread that just ended


class CoreSpeed:
    """The speed probe on ``cpu`` for a whole run (a subprocess writing to ``path``)."""

    def __init__(self, cpu: int, directory: Path) -> None:
        self.cpu = cpu
        self.path = directory / f"core-speed-{cpu}.bin"
        self.path.write_bytes(b"")
        self._samples: list[tuple[float, float]] = []
        self._offset = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.speed", str(cpu), str(self.path)],
            cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.DEVNULL)

    def _read(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        whole = len(data) - len(data) % _RECORD.size
        self._offset += whole
        self._samples.extend(_RECORD.iter_unpack(data[:whole]))

    def mean_ms(self, start: float, end: float) -> float | None:
        """The probe unit's mean CPU time (ms) between two ``time.monotonic()`` readings,
        the tenth at each end left out (a unit an interrupt landed in), or None if it has
        too few samples there (under 10). A mean, not a median: a phase that spans both
        states runs at their average, and the median would pick one."""
        self._read()
        seen = sorted(ms for t, ms in self._samples if start <= t <= end)
        if len(seen) < 10:
            return None
        cut = len(seen) // 10
        kept = seen[cut:len(seen) - cut]
        return round(sum(kept) / len(kept), 4)

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self.path.unlink(missing_ok=True)


def _probe(cpu: int, path: Path) -> None:
    os.sched_setaffinity(0, {cpu})
    with path.open("ab", buffering=0) as out:
        for _ in range(50):  # warm the unit's code before anything is recorded
            unit()
        while True:
            c = time.thread_time_ns()
            unit()
            ms = (time.thread_time_ns() - c) / 1e6
            out.write(_RECORD.pack(time.monotonic(), ms))
            time.sleep(INTERVAL)


if __name__ == "__main__":
    try:
        _probe(int(sys.argv[1]), Path(sys.argv[2]))
    except KeyboardInterrupt:
        pass
