"""httpcore's connection pool with a pool pass that costs O(connections), not more.

Every provider call passes through httpcore's ``AsyncConnectionPool`` twice (when it asks
for a connection and when its response is closed), and each pass,
``_assign_requests_to_connections``, in httpcore 1.0:

* asks every connection ``has_expired()``, which for an idle one polls its socket
  (``select.poll``, through anyio's attribute lookup, which builds a dict on each call) to
  see whether the server has closed it;
* counts the pool's connections once *per connection* (a list built inside the loop), so
  the pass is quadratic in the pool's size.

With the 100 connections :data:`minigate.transport.POOL_LIMITS` lets a busy process keep,
the profile of a saturated checkout showed about 15 % of the process's CPU in these passes
(``docs/performance.md``). This subclass keeps the pool's behaviour and does less work:

* a connection is checked for a server-side close (``has_expired()``) when it is about to
  be handed to a request — which is when a closed one would do harm — and every idle
  connection is still checked at most once a second (``SWEEP_SECONDS``), so expired ones
  are closed as before, a little later;
* idle connections above ``max_keepalive_connections`` are closed, counting idle ones
  (httpcore counts all connections there, which cannot exceed the limit with ours).

Everything else — queueing, creating a connection while under ``max_connections``,
replacing an idle connection of another origin when at the limit, the retry when a
connection turns out unavailable — is httpcore's own code (``handle_async_request``).
:func:`install` puts it under an httpx client only on the httpcore release it was written
against: it relies on the pool's private attributes, so on any other release the client
keeps httpcore's pool unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import httpcore
import httpx

#: The httpcore releases whose pool internals this subclass was written and tested against.
SUPPORTED = ("1.0.",)
#: Seconds between two checks of every idle connection for expiry or a server-side close.
SWEEP_SECONDS = 1.0


class LeanConnectionPool(httpcore.AsyncConnectionPool):
    """:class:`httpcore.AsyncConnectionPool` with a linear pool pass (module docstring)."""

    _next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list[Any]:
        closing: list[Any] = []
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + SWEEP_SECONDS
        kept: list[Any] = []
        idle = 0
        for connection in self._connections:
            if connection.is_closed():
                continue
            if sweep and connection.has_expired():
                closing.append(connection)
                continue
            if connection.is_idle():
                if idle >= self._max_keepalive_connections:
                    closing.append(connection)
                    continue
                idle += 1
            kept.append(connection)
        self._connections = kept

        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            chosen = None
            for connection in list(self._connections):
                if not (connection.can_handle_request(origin) and connection.is_available()):
                    continue
                if connection.is_idle() and connection.has_expired():
                    self._connections.remove(connection)  # the server closed it meanwhile
                    closing.append(connection)
                    continue
                chosen = connection
                break
            if chosen is None:
                if len(self._connections) < self._max_connections:
                    chosen = self.create_connection(origin)
                    self._connections.append(chosen)
                else:
                    spare = next((c for c in self._connections if c.is_idle()), None)
                    if spare is None:
                        continue  # stays queued until a connection is released
                    self._connections.remove(spare)
                    closing.append(spare)
                    chosen = self.create_connection(origin)
                    self._connections.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing


def install(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Give ``client``'s own transport a :class:`LeanConnectionPool` (same settings) when
    httpcore's release is one it was written for; otherwise leave it as it is."""
    transport = getattr(client, "_transport", None)
    pool = getattr(transport, "_pool", None)
    if (type(pool) is httpcore.AsyncConnectionPool
            and httpcore.__version__.startswith(SUPPORTED)):
        pool.__class__ = LeanConnectionPool
    return client
