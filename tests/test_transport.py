"""The transport's client-certificate seam: one extra client per certificate."""

from __future__ import annotations

import httpx
import pytest

from minigate.errors import ProviderUnavailable
from minigate.providers.base import ClientCertificate, HttpRequest
from minigate.transport import HttpxTransport, tls_client


async def test_requests_with_a_client_certificate_use_their_own_client() -> None:
    seen: list[str] = []

    def handler(label: str) -> httpx.MockTransport:
        return httpx.MockTransport(lambda r: (seen.append(label), httpx.Response(200))[1])

    made: list[ClientCertificate] = []

    def factory(cert: ClientCertificate) -> httpx.AsyncClient:
        made.append(cert)
        return httpx.AsyncClient(transport=handler("mtls"))

    transport = HttpxTransport(httpx.AsyncClient(transport=handler("plain")),
                               tls_factory=factory).for_provider("wechatpay-v2")
    cert = ClientCertificate("/c.pem", "/k.pem")
    await transport.send(HttpRequest("POST", "https://pay.test/a"))
    await transport.send(HttpRequest("POST", "https://pay.test/b", client_cert=cert))
    await transport.send(HttpRequest("POST", "https://pay.test/c", client_cert=cert))
    assert seen == ["plain", "mtls", "mtls"]
    assert made == [cert]  # one client (and pool) per certificate
    await transport.aclose()


def test_missing_certificate_files_fail_clearly() -> None:
    with pytest.raises(ProviderUnavailable, match="client certificate"):
        tls_client(ClientCertificate("/nonexistent/cert.pem", "/nonexistent/key.pem"))


async def test_a_provider_call_looks_up_no_modules() -> None:
    """After the first call, a provider call over a real socket imports nothing.

    httpcore asks for ``sniffio`` four times per request; without it installed each ask
    was a failed import (a search of every ``sys.path`` entry, ~80 µs) on every provider
    call. ``sniffio`` is a dependency for that reason; this catches a dependency change
    that brings the lookups back."""
    import asyncio
    import importlib.abc
    import sys

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    class Watch(importlib.abc.MetaPathFinder):
        looked: list[str] = []

        def find_spec(self, name: str, path: object, target: object = None) -> None:
            self.looked.append(name)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = HttpxTransport().for_provider("latipay")
    watch = Watch()
    try:
        first = await transport.send(HttpRequest("POST", f"http://127.0.0.1:{port}/a", body=b"x"))
        assert first.status == 200
        sys.meta_path.insert(0, watch)
        try:
            for _ in range(3):
                r = await transport.send(HttpRequest("POST", f"http://127.0.0.1:{port}/b",
                                                     body=b"x"))
                assert r.status == 200 and r.body == b"ok"
        finally:
            sys.meta_path.remove(watch)
        assert watch.looked == []
    finally:
        await transport.aclose()
        server.close()


@pytest.mark.parametrize("factory", ["transport", "runtime"])
async def test_more_than_twenty_calls_in_flight_keep_their_connections(factory: str) -> None:
    """Two waves of 40 concurrent calls over real sockets open 40 connections, not 60.

    With httpx's default limits the pool closes every idle connection while it holds more
    than 20 in all, so each wave above 20 pays new handshakes (TLS in production). The
    default-built transport (and so the job runner's and the standalone sandbox's
    clients) had those limits; the runtime's client already kept its connections, and
    this keeps it that way."""
    import asyncio

    from minigate.app import Runtime
    from minigate.config import Settings

    wave = 40
    accepted = 0
    waiting: list[asyncio.Future[None]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                # Hold every answer until the whole wave is in flight: each call needs its
                # own connection at the same moment.
                arrived = asyncio.get_running_loop().create_future()
                waiting.append(arrived)
                if len(waiting) == wave:
                    for future in waiting:
                        future.set_result(None)
                    waiting.clear()
                await arrived
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if factory == "runtime":  # the client a minigate process sends provider HTTP with
        client = Runtime(Settings(database_url="sqlite+aiosqlite:///:memory:"),
                         run_jobs=False).http
    else:
        client = HttpxTransport()._client
    transport = HttpxTransport(client)
    try:
        for _ in range(2):
            answers = await asyncio.wait_for(asyncio.gather(*(
                transport.send(HttpRequest("GET", f"http://127.0.0.1:{port}/q"))
                for _ in range(wave))), 10)
            assert [a.body for a in answers] == [b"ok"] * wave
        assert accepted == wave
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()
