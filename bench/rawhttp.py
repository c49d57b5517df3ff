"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load generator only.

httpx costs ~2–3 ms of client CPU per request on this machine, so one load process tops out
around 350 requests/s and would measure itself instead of the server. This client does only
what the benchmark needs (Content-Length and chunked bodies, keep-alive, a connection pool
per host) at a fraction of the cost.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class Response:
    __slots__ = ("status_code", "content")

    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class RawClient:
    def __init__(self, max_per_host: int = 64) -> None:
        self.max_per_host = max_per_host
        self._idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader,
                                                      asyncio.StreamWriter]]] = {}
        self._sem: dict[tuple[str, int], asyncio.Semaphore] = {}

    async def post(self, url: str, *, json_body: Any = None, content: bytes = b"",
                   headers: dict[str, str] | None = None) -> Response:
        hdrs = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        return await self.request("POST", url, hdrs, content)

    async def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", url, headers or {}, b"")

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes) -> Response:
        parts = urlsplit(url)
        host = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [f"{method} {target} HTTP/1.1", f"Host: {host[0]}:{host[1]}",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        sem = self._sem.setdefault(host, asyncio.Semaphore(self.max_per_host))
        async with sem:
            idle = self._idle.setdefault(host, [])
            reused = bool(idle)
            conn = idle.pop() if idle else await asyncio.open_connection(*host)
            try:
                response, keep = await self._exchange(conn, data)
            except (OSError, asyncio.IncompleteReadError) as exc:
                conn[1].close()
                # uvicorn closes keep-alive connections idle for 5 s; a reused connection
                # that answers nothing at all was closed before our request was read, so
                # it is retried once on a fresh connection (as httpx and urllib3 do).
                stale = reused and (isinstance(exc, ConnectionError) or (
                    isinstance(exc, asyncio.IncompleteReadError) and not exc.partial))
                if not stale:
                    raise
                conn = await asyncio.open_connection(*host)
                response, keep = await self._exchange(conn, data)
            except ValueError:
                conn[1].close()
                raise
            if keep:
                idle.append(conn)
            else:
                conn[1].close()
            return response

    @staticmethod
    async def _exchange(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                        data: bytes) -> tuple[Response, bool]:
        reader, writer = conn
        writer.write(data)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
        if "content-length" in fields:
            content = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            content = b"".join(chunks)
        else:
            content = b""
        return Response(status, content), fields.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()
