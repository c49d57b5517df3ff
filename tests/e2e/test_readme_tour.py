"""The README's curl tour, run exactly as written against a real `minigate serve`."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tour() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- tour:start -->", 1)[1].split("<!-- tour:end -->", 1)[0]
    return block.split("```sh", 1)[1].rsplit("```", 1)[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_tour(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MINIGATE_API_KEY": "sk_test_tour",
           "MINIGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tour.db'}"}
    env.pop("MINIGATE_MODE", None)
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "minigate.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        script = _tour().replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        # Twice against the same server and database: a reader runs it again.
        runs = [subprocess.run(["bash", "-euo", "pipefail", "-c", script],  # noqa: S603,S607
                               capture_output=True, text=True, timeout=60, cwd=tmp_path)
                for _ in range(2)]
        orders = httpx.get(f"http://127.0.0.1:{port}/v1/orders",
                           headers={"Authorization": "Bearer sk_test_tour"}).json()["data"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        out = result.stdout
        assert '"paid":true' in out.replace(" ", "")
        assert re.search(r"^partially_refunded$", out, re.M)
        assert '"status":"succeeded"' in out.replace(" ", "")
        assert '"type": "order.paid"' in out
        # The refund was sent twice and made once: both answers are the same refund.
        refund_ids = re.findall(r'"id":\s*"(rfd_[^"]+)"', out)
        assert len(set(refund_ids)) == 1, out
        timeline = out.strip().splitlines()[-1]
        assert timeline.count('"type": "refund.created"') == 1, timeline
    assert len(orders) == 2 and all(o["status"] == "partially_refunded" for o in orders)
    assert orders[0]["merchant_reference"] != orders[1]["merchant_reference"]


def test_the_tour_helper_reports_an_error_answer() -> None:
    helper = _tour().split("j() {", 1)[1].split("; }", 1)[0]
    script = "j() {" + helper + "; }\n" + \
        """echo '{"error":{"code":"not_found"}}' | j id"""
    result = subprocess.run(["bash", "-c", script], capture_output=True,  # noqa: S603,S607
                            text=True, timeout=10)
    assert result.returncode == 1
    assert result.stderr.strip() == 'minigate answered: {"error": {"code": "not_found"}}'
    assert "KeyError" not in result.stderr
