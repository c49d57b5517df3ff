"""Outbound provider notifications with each provider's retry timetable.

Every delivery is an asyncio task: send, and if the merchant did not acknowledge in the
provider's format, wait the next interval of the timetable (multiplied by ``time_scale``,
so 30 s can be 30 ms in tests) and send again. Options injected through the sandbox
control API make it send duplicates, delay the first send, or drop everything (a
"blackholed" notification that only reconciliation can recover from).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("minigate.sandbox.notifier")

MAX_DELIVERIES_KEPT = 10_000


@dataclass
class NotifyOptions:
    duplicates: int = 0
    delay: float = 0.0
    blackhole: bool = False


@dataclass
class Delivery:
    label: str
    url: str
    attempts: int = 0
    acked: bool = False
    statuses: list[int] = field(default_factory=list)


class Notifier:
    def __init__(self, http: httpx.AsyncClient, time_scale: float = 1.0) -> None:
        self.http = http
        self.time_scale = time_scale
        self.options = NotifyOptions()
        #: The latest deliveries, newest last, for tests to look at (bounded: a long-lived
        #: sandbox must not keep one per notification it ever sent).
        self.deliveries: deque[Delivery] = deque(maxlen=MAX_DELIVERIES_KEPT)
        self._tasks: set[asyncio.Task[None]] = set()

    def send(
        self, label: str, url: str, body: bytes, headers: Mapping[str, str],
        schedule: Iterable[float], is_ack: Callable[[httpx.Response], bool],
        *, headers_factory: Callable[[], Mapping[str, str]] | None = None,
    ) -> Delivery:
        """Start delivering; ``schedule`` gives the waits between attempts (seconds)."""
        delivery = Delivery(label, url)
        self.deliveries.append(delivery)
        if self.options.blackhole:
            return delivery
        opts = self.options
        for copy in range(1 + opts.duplicates):
            task = asyncio.create_task(self._run(
                delivery, url, body, headers, iter(schedule) if copy == 0 else iter(()),
                is_ack, headers_factory, opts.delay,
            ))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return delivery

    async def _run(
        self, delivery: Delivery, url: str, body: bytes, headers: Mapping[str, str],
        waits: Iterable[float], is_ack: Callable[[httpx.Response], bool],
        headers_factory: Callable[[], Mapping[str, str]] | None, delay: float,
    ) -> None:
        if delay:
            await asyncio.sleep(delay * self.time_scale)
        for wait in itertools.chain([0.0], waits):
            if wait:
                await asyncio.sleep(wait * self.time_scale)
            if delivery.acked:
                return
            sent_headers = dict(headers_factory() if headers_factory else headers)
            delivery.attempts += 1
            try:
                response = await self.http.post(url, content=body, headers=sent_headers)
            except httpx.HTTPError as exc:
                log.info("%s: %s unreachable (%s)", delivery.label, url, type(exc).__name__)
                continue
            delivery.statuses.append(response.status_code)
            if is_ack(response):
                delivery.acked = True
                return

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every delivery in flight has finished (tests)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
