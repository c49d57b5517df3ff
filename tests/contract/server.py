"""A real ``minigate serve`` process on 127.0.0.1 (SQLite, sandbox), for contract tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

API_KEY = "sk_test_contract"


@dataclass
class Server:
    base: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def rss(self) -> int:
        """Resident set size of the server process, in bytes (from /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(tmp: Path, **env: str) -> Iterator[Server]:
    """Start ``minigate serve`` with ``MINIGATE_*`` overrides; stop it afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / f"serve-{port}.log"
    environ = {**os.environ, "MINIGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/c{port}.db",
               "MINIGATE_API_KEY": API_KEY, "MINIGATE_PUBLIC_URL": base,
               "MINIGATE_MODE": "sandbox", "MINIGATE_SANDBOX__TIME_SCALE": "0.01", **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "minigate.cli", "serve", "--port", str(port)],
            env=environ, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    server = Server(base, port, proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, server.output()
            try:
                if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "minigate did not start:\n" + server.output()
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
