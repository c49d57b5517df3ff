"""Event-loop lag: how late the event loop runs a timer that is due every :data:`INTERVAL`.

Everything a minigate process does runs on one event loop, so while the loop is held —
by CPU-bound work, a blocking call, a long garbage collection, or a machine that gives
the process no CPU — every request and notification in flight waits. A timer due every
50 ms that fires *late* says by how much: a loop held for 200 ms shows as a lag of up to
200 ms (a hold shorter than the interval is seen when a due time falls inside it, so the
count of short holds is a sample, the long ones are all seen). Requests stay fast when
this stays near zero; a p99 that jumps while it does not points outside the process (the
database, the network, the caller).

:class:`LoopLag` measures; what it observes goes to a callback, the histogram
``minigate_event_loop_lag_seconds`` in minigate (``docs/operations.md``). The cost is
twenty timer wake-ups a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Seconds between two due times of the timer.
INTERVAL = 0.05


class LoopLag:
    """Runs on the current event loop from :meth:`start` to :meth:`stop`, passing each
    wake-up's lateness in seconds (0 when on time) to ``observe``.

    A plain timer callback (``loop.call_later``), not a task: no coroutine step per
    wake-up, and nothing that a patched ``asyncio.sleep`` could turn into a busy loop."""

    def __init__(self, observe: Callable[[float], None], interval: float = INTERVAL) -> None:
        self.observe = observe
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        if self._handle is None:
            self._schedule(asyncio.get_running_loop())

    async def stop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.interval
        self._handle = loop.call_later(self.interval, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        late = max(0.0, loop.time() - self._due)
        self._schedule(loop)  # first: an observer that raises does not stop the timer
        self.observe(late)
