"""Stock SDKs against a real ``minigate sandbox`` process over real HTTP on 127.0.0.1.

The sandbox runs as a subprocess (the ``minigate sandbox`` command) on a free port with a
keys directory this test session created; the SDKs get the credentials from that directory
and only their base URL changed. Notifications go to a small HTTP receiver in the test
process, which records them for the SDKs' own callback functions to verify.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from minigate.sandbox import credentials as cred
from minigate.sandbox.keystore import SandboxCredentials, load_or_create

READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sandbox:
    base: str
    creds: SandboxCredentials
    process: subprocess.Popen[bytes]
    ca: str | None = None  # the CA to trust (HTTPS only)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca) if self.ca else True

    @property
    def keys(self) -> Path:
        assert self.creds.directory is not None
        return self.creds.directory

    def openid(self, user: str) -> str:
        """What a mini program does: wx.login in the wallet, jscode2session on the server."""
        with httpx.Client(base_url=self.base, verify=self.verify, timeout=10) as http:
            code = http.post("/sandbox/wallet/login", json={"user": user}).json()["code"]
            answer = http.get("/sandbox/wechat-login/sns/jscode2session", params={
                "appid": cred.MINI_APP_ID, "secret": self.creds.mini_app_secret,
                "js_code": code, "grant_type": "authorization_code"}).json()
        return str(answer["openid"])

    def request_payment(self, params: dict[str, str]) -> str:
        """What the WeChat app does with the mini program's wx.requestPayment params."""
        r = httpx.post(f"{self.base}/sandbox/wallet/requestPayment", json=params,
                       verify=self.verify, timeout=10)
        return str(r.json()["errMsg"])


def start_sandbox(keys: Path, log: Path, *extra: str) -> Sandbox:
    port = free_port()
    tls = "--tls" in extra
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    creds = load_or_create(keys)  # the sandbox process loads what this created
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, "-m", "minigate.cli", "sandbox", "--host", "127.0.0.1",
             "--port", str(port), "--keys-dir", str(keys), "--time-scale", "0.001", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    ca = str(keys / "merchant" / "sandbox-ca.pem") if tls else None
    sandbox = Sandbox(base, creds, process, ca)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"minigate sandbox exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/sandbox/healthz", verify=sandbox.verify,
                         timeout=1).status_code == 200:
                return sandbox
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop(sandbox)
            raise RuntimeError(f"minigate sandbox not ready: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def stop(sandbox: Sandbox) -> None:
    sandbox.process.terminate()
    try:
        sandbox.process.wait(10)
    except subprocess.TimeoutExpired:
        sandbox.process.kill()
        sandbox.process.wait(10)


@pytest.fixture(scope="session")
def sdk_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk") / "sandbox-keys"


@pytest.fixture(scope="session")
def sandbox(sdk_keys: Path) -> Iterator[Sandbox]:
    running = start_sandbox(sdk_keys, sdk_keys.parent / "sandbox.log")
    yield running
    stop(running)


@dataclass
class Note:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """The merchant's notification endpoint: records, acknowledges as WeChat expects."""

    base: str
    notes: list[Note] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, match: Callable[[Note], Any], timeout: float = 10.0) -> Note:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = next((n for n in self.notes if match(n)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such notification; got {self.notes!r}")
                self.changed.wait(left)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
            note = Note(self.path, {k: v for k, v in self.headers.items()},
                        self.rfile.read(length))
            with state.changed:
                state.notes.append(note)
                state.changed.notify_all()
            if self.path.startswith("/v2"):
                body = b"<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>"
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(204)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
