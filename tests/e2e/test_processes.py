"""Real processes: `minigate serve` without jobs, and a separate `minigate worker`, on one
database. A notification that never arrives is settled by the worker's reconciler."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("minigate did not start")


def _start(command: str, env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "minigate.cli", command, *args], env=env, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def paid_unheard(http: httpx.Client, auth: dict[str, str], reference: str, amount: str,
                 user: str) -> dict:
    """An order the shopper paid whose notification never arrives (blackholed)."""
    http.post("/sandbox/control/notifications", json={"blackhole": True})
    order = http.post("/v1/orders", headers=auth, json={
        "merchant_reference": reference, "amount": amount, "currency": "NZD",
        "description": "Pastry", "channel": "wechat"}).json()
    code = http.post("/sandbox/wallet/login", json={"user": user}).json()["code"]
    pay = http.post(f"/v1/client/orders/{order['id']}/pay", json={
        "client_token": order["client_token"], "login_code": code}).json()
    paid = http.post("/sandbox/wallet/requestPayment", json=pay["wechat"]).json()
    assert paid == {"errMsg": "requestPayment:ok"}
    return order


def test_worker_process_settles_what_the_api_process_missed(
    database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    key = "sk_test_processes"
    env = {**os.environ, "MINIGATE_DATABASE_URL": database_url, "MINIGATE_API_KEY": key,
           "MINIGATE_PUBLIC_URL": base, "MINIGATE_MODE": "sandbox",
           "MINIGATE_RECONCILE_SCHEDULE": "[1]", "MINIGATE_SANDBOX__TIME_SCALE": "0.01"}
    api = _start("serve", {**env, "MINIGATE_RUN_JOBS": "false"}, tmp_path, "--port", str(port))
    worker = None
    try:
        _wait_healthy(base, api)
        worker = _start("worker", env, tmp_path)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, timeout=10) as http:
            order = paid_unheard(http, auth, "proc-1", "3.50", "carol")
            status = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and status != "paid":
                time.sleep(0.2)
                status = http.get(f"/v1/orders/{order['id']}", headers=auth).json()["status"]
            assert status == "paid"
            timeline = http.get(f"/v1/orders/{order['id']}", headers=auth).json()["timeline"]
            assert [e["type"] for e in timeline].count("order.paid") == 1
    finally:
        for proc in (worker, api):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
