"""The provider HTTP client's connection pool (``minigate/httppool.py``) over real sockets:
it is the one every client gets, it reuses connections, never hands out one the server has
closed, keeps to its limits and closes expired idle connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpcore
import httpx
import pytest

from minigate import httppool
from minigate.transport import http_client


class Server:
    """An HTTP/1.1 server on a real socket: answers ``ok`` after ``delay`` seconds and,
    with ``close_after`` set, closes each connection that long after its first answer."""

    def __init__(self, delay: float = 0.0, close_after: float | None = None) -> None:
        self.delay, self.close_after = delay, close_after
        self.accepted = self.open = self.peak = 0
        self.server: asyncio.Server | None = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                if self.close_after is not None:
                    await asyncio.sleep(self.close_after)
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()  # the socket is closed: the client can see it
            self.open -= 1

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def make(connections: int | None = None, idle: int | None = None,
             expiry: float = 5.0) -> httpx.AsyncClient:
        """minigate's client; with ``connections``, these pool limits instead."""
        limits = {} if connections is None else {"limits": httpx.Limits(
            max_connections=connections, max_keepalive_connections=idle or connections,
            keepalive_expiry=expiry)}
        made.append(http_client(**limits))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


def _pool(client: httpx.AsyncClient) -> Any:
    return client._transport._pool  # type: ignore[attr-defined]


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (5 s at most) for the server's side of a socket event to have happened."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never saw it")


async def test_every_client_gets_the_lean_pool_only_on_the_release_it_was_written_for(
    monkeypatch: pytest.MonkeyPatch, client_factory: Callable[..., httpx.AsyncClient],
) -> None:
    assert type(_pool(client_factory())) is httppool.LeanConnectionPool
    monkeypatch.setattr(httpcore, "__version__", "2.0.0")
    assert type(_pool(client_factory())) is httpcore.AsyncConnectionPool
    mocked = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert httppool.install(mocked) is mocked  # not an HTTP transport: left alone
    await mocked.aclose()


async def test_calls_one_after_another_share_one_connection(
    client_factory: Callable[..., httpx.AsyncClient],
) -> None:
    server = Server()
    async with server as url:
        client = client_factory()
        for _ in range(5):
            assert (await client.get(url)).text == "ok"
        assert server.accepted == 1 and len(_pool(client).connections) == 1


async def test_a_connection_the_server_closed_is_never_handed_out(
    monkeypatch: pytest.MonkeyPatch, client_factory: Callable[..., httpx.AsyncClient],
) -> None:
    """The pool checks an idle connection for a close from the server when it hands it
    out, not only on its once-a-second sweep: with the sweep held off, a call after the
    server closed the connection still gets a new one (on a closed one it would fail with
    "Server disconnected without sending a response")."""
    monkeypatch.setattr(httppool, "SWEEP_SECONDS", 3600.0)
    server = Server(close_after=0.01)
    async with server as url:
        client = client_factory()
        for _ in range(4):
            assert (await client.get(url)).text == "ok"
            await _until(lambda: server.open == 0)  # the server has closed it meanwhile
        assert server.accepted == 4


async def test_the_pool_keeps_to_max_connections_and_queues_the_rest(
    client_factory: Callable[..., httpx.AsyncClient],
) -> None:
    server = Server(delay=0.05)
    async with server as url:
        client = client_factory(connections=2)
        answers = await asyncio.wait_for(asyncio.gather(*(client.get(url)
                                                          for _ in range(8))), 10)
        assert [a.text for a in answers] == ["ok"] * 8
        assert server.peak == 2 and server.accepted == 2


async def test_idle_connections_past_their_keep_alive_are_closed(
    monkeypatch: pytest.MonkeyPatch, client_factory: Callable[..., httpx.AsyncClient],
) -> None:
    monkeypatch.setattr(httppool, "SWEEP_SECONDS", 0.0)
    server = Server(delay=0.02)
    async with server as url:
        client = client_factory(connections=10, expiry=0.2)
        await asyncio.gather(*(client.get(url) for _ in range(3)))
        assert server.accepted == 3 and len(_pool(client).connections) == 3
        await asyncio.sleep(0.3)
        assert (await client.get(url)).text == "ok"  # its pass closes the three
        assert server.accepted == 4 and len(_pool(client).connections) == 1
        await _until(lambda: server.open == 1)  # the three were closed, not just dropped


async def test_surplus_idle_connections_are_closed(
    client_factory: Callable[..., httpx.AsyncClient],
) -> None:
    server = Server(delay=0.05)
    async with server as url:
        client = client_factory(connections=6, idle=2)
        await asyncio.gather(*(client.get(url) for _ in range(6)))
        assert server.accepted == 6
        assert (await client.get(url)).text == "ok"
        assert len(_pool(client).connections) <= 2


async def test_a_cancelled_call_leaves_the_pool_usable(
    client_factory: Callable[..., httpx.AsyncClient],
) -> None:
    server = Server(delay=0.2)
    async with server as url:
        client = client_factory(connections=1)
        first = asyncio.ensure_future(client.get(url))
        queued = asyncio.ensure_future(client.get(url))  # waits for the one connection
        await asyncio.sleep(0.05)
        queued.cancel()
        assert (await first).text == "ok"
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert (await client.get(url)).text == "ok"
        assert _pool(client)._requests == []


def test_the_client_drops_idle_connections_before_the_servers_it_talks_to_do() -> None:
    """A call that reuses a connection just as its server closes it for idleness fails
    ("Server disconnected without sending a response"), and a provider call that fails
    that way has an unknown outcome. The pool's keep-alive is shorter than that of the
    sandbox's server (minigate's own uvicorn settings)."""
    from minigate.config import HttpSettings
    from minigate.transport import POOL_LIMITS

    assert POOL_LIMITS.keepalive_expiry is not None
    assert POOL_LIMITS.keepalive_expiry < HttpSettings().keep_alive_timeout
