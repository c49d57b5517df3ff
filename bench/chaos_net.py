"""The fault soak's network pieces, on 127.0.0.1: the merchant's webhook endpoint and the
load balancer in front of the API processes.

:class:`Receiver` is the merchant's endpoint (plain HTTP/1.1). It verifies each webhook's
``Minigate-Signature`` over the raw body, then fails on purpose with probability
``fail_ratio`` (HTTP 500) and otherwise acknowledges (200) and counts the event id.
:meth:`down` closes the port and every open connection (minigate then sees connection
refused) until :meth:`up`.

:class:`Balancer` is minigate's public address (``MINIGATE_PUBLIC_URL`` of every API
process, so the provider's notifications and the ``notify_url`` sent with a retried payment
are the same whichever process served it): a TCP proxy that gives each connection to the
next API process that accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter

from bench.servers import free_port
from minigate.jobs import signing

MAX_BODY = 1 << 20


class Receiver:
    def __init__(self, secret: str, rng: random.Random, fail_ratio: float = 0.5) -> None:
        self.secret = secret
        self.rng = rng
        self.fail_ratio = fail_ratio
        self.port = free_port()
        self.received: Counter[str] = Counter()  # event id -> acknowledged deliveries
        self.attempts = 0
        self.failed_on_purpose = 0
        self.bad_signatures = 0
        self.downs = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    @property
    def is_up(self) -> bool:
        return self._server is not None

    async def up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                      reuse_address=True)

    async def down(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self.downs += 1
        server.close()
        for writer in list(self._conns):
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:  # keep-alive: one request after another on the connection
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if not 0 <= length <= MAX_BODY:
                    break
                body = await reader.readexactly(length)
                status = self.answer(headers.get(signing.HEADER.lower(), ""), body)
                writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                             "Content-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()

    def answer(self, signature: str, body: bytes) -> int:
        """The endpoint's decision for one delivery (its HTTP status)."""
        self.attempts += 1
        if not signing.verify(signature, body, self.secret, int(time.time())):
            self.bad_signatures += 1
            return 400
        if self.rng.random() < self.fail_ratio:
            self.failed_on_purpose += 1
            return 500
        try:
            event_id = str(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            self.bad_signatures += 1  # signed, but not an event: count it as bad too
            return 400
        self.received[event_id] += 1
        return 200


class Balancer:
    """Round-robin TCP proxy to ``ports``; a backend that refuses is skipped."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.port = free_port()
        self._next = 0
        self._server: asyncio.Server | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in self.ports:
            self._next = (self._next + 1) % len(self.ports)
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.ports[self._next])
            except OSError:
                continue
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
