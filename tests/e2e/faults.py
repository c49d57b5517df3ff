"""Fault-test support: a provider proxy that can hold answers, processes that can be
killed, and direct database access for what a test must observe or expire."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from sqlalchemy import text

from minigate.store.db import make_engine

Hold = Callable[[str, str, bytes], bool]


class FaultProxy:
    """Forwards every request to ``upstream`` and records it. A request that ``hold``
    matches is forwarded (the provider does the work) and then its answer is held until
    :attr:`release` is set — the caller hangs "while the request is at the provider"."""

    def __init__(self, upstream: str, hold: Hold | None = None) -> None:
        self.upstream = upstream
        self.hold = hold
        self.seen: list[tuple[str, str, bytes]] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.seen.append((self.command, self.path, body))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                reply = httpx.request(self.command, proxy.upstream + self.path, content=body,
                                      headers=headers, timeout=30)
                if proxy.hold is not None and proxy.hold(self.command, self.path, body):
                    proxy.holding.set()
                    proxy.release.wait(60)
                try:
                    self.send_response(reply.status_code)
                    for name in ("content-type", "wechatpay-signature", "wechatpay-serial",
                                 "wechatpay-timestamp", "wechatpay-nonce"):
                        if name in reply.headers:
                            self.send_header(name, reply.headers[name])
                    self.send_header("Content-Length", str(len(reply.content)))
                    self.end_headers()
                    self.wfile.write(reply.content)
                except OSError:
                    pass  # the caller died while we held its answer

            do_GET = do_POST = _forward  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests_to(self, path_suffix: str) -> list[bytes]:
        return [body for method, path, body in self.seen
                if method == "POST" and path.split("?")[0].endswith(path_suffix)]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def latipay_refund_numbers(proxy: FaultProxy) -> list[str]:
    """Our refund number of every Latipay refund call that reached the provider (it goes
    first in Latipay's ``reference``)."""
    return [json.loads(body)["reference"].split()[0]
            for body in proxy.requests_to("/sandbox/latipay/refund")]


def run_sql(database_url: str, statement: str, **params: object) -> list[tuple[object, ...]]:
    """One statement against the test's database, outside any minigate process."""

    async def go() -> list[tuple[object, ...]]:
        engine = make_engine(database_url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(go())


def expire_idempotency_locks(database_url: str) -> None:
    """What 60 seconds would do: every in-flight Idempotency-Key lock runs out."""
    run_sql(database_url, "UPDATE idempotency_keys SET locked_until = created_at "
                          "WHERE state = 'in_flight'")
