"""A real ``minigate serve`` (sandbox, temporary SQLite, 127.0.0.1, a free port), a webhook
receiver whose answer the test chooses, and Debian's Chromium for Playwright.

Shared by the browser tests and ``python -m tests.dashboard.docs_screenshots``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
API_KEY = "sk_test_dashboard_browser"
SCREENSHOTS = Path(__file__).parent / "screenshots"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebhookSink:
    """Answers webhook POSTs with ``status`` and keeps what it received."""

    def __init__(self) -> None:
        self.status = 500
        self.received: list[bytes] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                length = min(int(self.headers.get("content-length") or 0), 1 << 20)
                sink.received.append(self.rfile.read(length))
                self.send_response(sink.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    sink: WebhookSink
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base, timeout=10)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def paid_order(self, reference: str, amount: str = "12.30", currency: str = "NZD",
                   provider: str | None = None) -> dict[str, Any]:
        """An order created by the API and paid by the sandbox shopper, once it is paid."""
        body: dict[str, Any] = {"merchant_reference": reference, "amount": amount,
                                "currency": currency, "description": "Flat white",
                                "channel": "wechat"}
        if provider:
            body["provider"] = provider
        order = self.http.post("/v1/orders", headers=self.auth, json=body).json()
        code = self.http.post("/sandbox/wallet/login", json={"user": "alice"}).json()["code"]
        pay = self.http.post(f"/v1/client/orders/{order['id']}/pay", json={
            "client_token": order["client_token"], "login_code": code}).json()
        paid = self.http.post("/sandbox/wallet/requestPayment", json=pay["wechat"]).json()
        assert paid == {"errMsg": "requestPayment:ok"}, paid
        return self.wait_order(order["id"], "paid")

    def pending_order(self, reference: str, amount: str = "7.50") -> dict[str, Any]:
        """An order the shopper started paying (a prepay exists) but has not paid."""
        order: dict[str, Any] = self.http.post("/v1/orders", headers=self.auth, json={
            "merchant_reference": reference, "amount": amount, "currency": "NZD",
            "description": "Croissant", "channel": "wechat"}).json()
        code = self.http.post("/sandbox/wallet/login", json={"user": "bob"}).json()["code"]
        self.http.post(f"/v1/client/orders/{order['id']}/pay", json={
            "client_token": order["client_token"], "login_code": code})
        return self.wait_order(order["id"], "pending")

    def order(self, order_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(f"/v1/orders/{order_id}", headers=self.auth).json()
        return answer

    def wait_order(self, order_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = self.order(order_id)
            if order["status"] == status or time.monotonic() > deadline:
                assert order["status"] == status, order
                return order
            time.sleep(0.05)


@contextmanager
def running_server(tmp: Path, **env: str) -> Iterator[Server]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sink = WebhookSink()
    environment = {**os.environ, "MINIGATE_MODE": "sandbox", "MINIGATE_API_KEY": API_KEY,
                   "MINIGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'dashboard.db'}",
                   "MINIGATE_PUBLIC_URL": base, "MINIGATE_WEBHOOK_URL": sink.url,
                   "MINIGATE_WEBHOOK_SECRETS": '["whsec_test_dashboard"]',
                   "MINIGATE_SANDBOX__TIME_SCALE": "0.01",
                   "MINIGATE_DASHBOARD__SIGNIN_DELAY_SECONDS": "0.2", **env}
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "minigate.cli", "serve", "--port", str(port)], env=environment,
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("minigate serve did not start")
            time.sleep(0.1)
        server = Server(base, proc, sink)
        try:
            yield server
        finally:
            server.http.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        sink.close()


def browser_missing_reason() -> str | None:
    if CHROMIUM.exists():
        return None
    return (f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to "
            f"run the dashboard's browser tests; MINIGATE_REQUIRE_BROWSER=1 makes this a failure")


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless; never a browser downloaded by Playwright."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
