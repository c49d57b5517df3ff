"""A real `minigate worker` process killed (SIGKILL) in the middle of a job: the job's
lease runs out, another worker process picks it up, and it is done exactly once."""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.e2e.test_processes import _free_port, _start, _wait_healthy, paid_unheard

QUERY = "/sandbox/latipay/v2/transaction/"


class HangingProxy:
    """Sits between a worker and the provider: forwards everything, except that it
    swallows provider queries and never answers them (the worker hangs mid-job)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.held: list[str] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith(QUERY):
                    proxy.held.append(self.path)
                    proxy.holding.set()
                    proxy.release.wait(60)
                    return
                reply = httpx.get(proxy.upstream + self.path, headers=dict(self.headers))
                self.send_response(reply.status_code)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _order_status(http: httpx.Client, order_id: str, auth: dict[str, str]) -> dict:
    return dict(http.get(f"/v1/orders/{order_id}", headers=auth).json())


def test_killed_worker_job_comes_back_and_is_done_once(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    key = "sk_test_worker_crash"
    env = {**os.environ, "MINIGATE_DATABASE_URL": database_url, "MINIGATE_API_KEY": key,
           "MINIGATE_PUBLIC_URL": base, "MINIGATE_MODE": "sandbox",
           "MINIGATE_RECONCILE_SCHEDULE": "[1]", "MINIGATE_SANDBOX__TIME_SCALE": "0.01",
           "MINIGATE_JOB_LEASE_SECONDS": "3"}
    api = _start("serve", {**env, "MINIGATE_RUN_JOBS": "false"}, tmp_path, "--port", str(port))
    proxy = HangingProxy(base)
    doomed = survivor = None
    try:
        _wait_healthy(base, api)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, timeout=10) as http:
            order = paid_unheard(http, auth, "crash-1", "4.20", "dave")

            # Worker 1 claims the payment check, asks the provider ... and is killed.
            doomed = _start("worker", {**env, "MINIGATE_PUBLIC_URL": proxy.url}, tmp_path)
            assert proxy.holding.wait(30), "worker 1 never got to the provider query"
            doomed.kill()
            doomed.wait(timeout=10)
            assert _order_status(http, order["id"], auth)["status"] == "pending"

            # Worker 2 takes the job over once the lease runs out, and finishes it.
            survivor = _start("worker", env, tmp_path)
            status = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and status != "paid":
                time.sleep(0.2)
                status = _order_status(http, order["id"], auth)["status"]
            assert status == "paid"
            time.sleep(1.0)  # let worker 2 run a few more passes: nothing may happen twice
            detail = _order_status(http, order["id"], auth)
            types = [e["type"] for e in detail["timeline"]]
            assert types.count("order.paid") == 1 and detail["status"] == "paid"
            assert len(proxy.held) == 1  # worker 1 asked once; worker 2 went direct
    finally:
        for proc in (survivor, doomed, api):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
        proxy.close()
