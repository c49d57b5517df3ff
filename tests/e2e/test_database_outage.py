"""A real PostgreSQL stopped and started under a running `minigate serve`: the API answers
a retryable 503 on a kept-alive connection, provider callbacks get their failure ack, the
job runner logs the outage's start and end and no traceback, and a refund caught by the
outage mid-flight is resumed by its retry and paid out once."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from bench.pgcluster import PrivateCluster, binaries
from minigate.providers.latipay import signing
from minigate.sandbox import credentials as cred
from tests.e2e.faults import FaultProxy, latipay_refund_numbers
from tests.e2e.test_processes import _free_port, _start, _wait_healthy
from tests.support import postgres_required

pytestmark = pytest.mark.postgres
KEY = "sk_test_outage"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PrivateCluster]:
    if binaries() is None:
        if postgres_required():
            pytest.fail("MINIGATE_REQUIRE_POSTGRES=1 but no initdb/pg_ctl on this machine")
        pytest.skip("SKIPPING: no PostgreSQL server binaries to run a private cluster")
    pg = PrivateCluster()
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


def _raw_get_twice(port: int, path: str) -> list[bytes]:
    """Two requests on one keep-alive connection: both must be answered."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        for _ in range(2):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                         "\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length")][0])
            while len(rest) < length:
                rest += sock.recv(65536)
            answers.append(head)
    return answers


def _notification(reference: str) -> bytes:
    sig = signing.result_signature(cred.LATIPAY_API_KEY, reference, "wechat", "paid", "NZD",
                                   "10.00")
    return urlencode({"merchant_reference": reference, "order_id": "2026000000000009",
                      "currency": "NZD", "amount": "10.00", "payment_method": "wechat",
                      "status": "paid", "pay_time": "2026-01-01 10:00:00",
                      "signature": sig}).encode()


def test_database_outage_is_503_failure_ack_and_a_quiet_runner(
        cluster: PrivateCluster, tmp_path: Path) -> None:
    url = cluster.create_database("outage")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MINIGATE_DATABASE_URL": url, "MINIGATE_API_KEY": KEY,
           "MINIGATE_PUBLIC_URL": base, "MINIGATE_MODE": "sandbox",
           "MINIGATE_SANDBOX__TIME_SCALE": "0.01"}
    proc = _start("serve", env, tmp_path, "--port", str(port))
    try:
        _wait_healthy(base, proc)
        with httpx.Client(base_url=base, timeout=20) as http:
            order = http.post("/v1/orders", headers=AUTH, json={
                "merchant_reference": "outage-1", "amount": "10.00", "currency": "NZD",
                "description": "Soup", "channel": "wechat"}).json()
            cluster.stop("immediate")
            time.sleep(2.5)  # a few job passes fail meanwhile
            r = http.get(f"/v1/orders/{order['id']}", headers=AUTH)
            assert r.status_code == 503 and r.headers["retry-after"].isdigit()
            assert r.json()["error"]["code"] == "database_unavailable"
            assert "Idempotency-Key" in r.json()["error"]["message"]
            heads = _raw_get_twice(port, f"/v1/orders/{order['id']}")
            assert all(h.startswith(b"HTTP/1.1 503") for h in heads)
            assert not any(b"connection: close" in h.lower() for h in heads)
            ack = http.post("/v1/notify/latipay", content=_notification("MGX"),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert (ack.status_code, ack.text) == (400, "rejected")  # Latipay sends it again
            r = http.post("/v1/orders", headers={**AUTH, "Idempotency-Key": "o-outage"}, json={
                "merchant_reference": "outage-2", "amount": "1.00", "currency": "NZD",
                "description": "Soup", "channel": "wechat"})
            assert r.status_code == 503
            cluster.start()
            deadline = time.monotonic() + 60
            while http.get(f"/v1/orders/{order['id']}", headers=AUTH).status_code != 200:
                assert time.monotonic() < deadline, "minigate did not recover"
                time.sleep(0.3)
            time.sleep(2.0)  # the runner's next pass notices
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert "Traceback" not in out, out[-3000:]
    assert out.count("job runner backing off") == 1, out[-3000:]
    assert out.count("database available again after") == 1, out[-3000:]


def test_refund_caught_by_a_database_outage_is_resumed_once(
        cluster: PrivateCluster, tmp_path: Path) -> None:
    url = cluster.create_database("refund_outage")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proxy = FaultProxy(base)
    env = {**os.environ, "MINIGATE_DATABASE_URL": url, "MINIGATE_API_KEY": KEY,
           "MINIGATE_PUBLIC_URL": proxy.url, "MINIGATE_MODE": "sandbox",
           "MINIGATE_RECONCILE_SCHEDULE": "[1]", "MINIGATE_SANDBOX__TIME_SCALE": "0.01"}
    proc = _start("serve", env, tmp_path, "--port", str(port))
    try:
        _wait_healthy(base, proc)
        with httpx.Client(base_url=base, timeout=30) as http:
            order = http.post("/v1/orders", headers=AUTH, json={
                "merchant_reference": "refund-outage", "amount": "10.00", "currency": "NZD",
                "description": "Soup", "channel": "wechat"}).json()
            code = http.post("/sandbox/wallet/login", json={"user": "fay"}).json()["code"]
            pay = http.post(f"/v1/client/orders/{order['id']}/pay", json={
                "client_token": order["client_token"], "login_code": code}).json()
            http.post("/sandbox/wallet/requestPayment", json=pay["wechat"])
            deadline = time.monotonic() + 30
            while http.get(f"/v1/orders/{order['id']}", headers=AUTH).json()["status"] != "paid":
                assert time.monotonic() < deadline
                time.sleep(0.2)

            proxy.hold = lambda method, path, body: path.endswith("/sandbox/latipay/refund")
            answers: list[httpx.Response] = []
            headers = {**AUTH, "Idempotency-Key": "refund-outage-1"}
            refund_url = f"/v1/orders/{order['id']}/refunds"
            sender = threading.Thread(target=lambda: answers.append(
                http.post(refund_url, json={"amount": "5.00"}, headers=headers)))
            sender.start()
            assert proxy.holding.wait(30)
            cluster.stop("immediate")  # the refund is at the provider; the database goes
            proxy.hold = None
            proxy.release.set()
            sender.join(30)
            assert answers and answers[0].status_code == 503, answers and answers[0].text
            cluster.start()
            deadline = time.monotonic() + 60
            while True:  # retry with the same key until there is an answer
                r = http.post(refund_url, json={"amount": "5.00"}, headers=headers)
                if r.status_code == 201:
                    break
                assert r.status_code in (409, 503) and time.monotonic() < deadline, r.text
                time.sleep(0.5)
            refund = r.json()
            deadline = time.monotonic() + 40
            while True:
                detail = http.get(f"/v1/orders/{order['id']}", headers=AUTH).json()
                if detail["refunds"] and detail["refunds"][0]["status"] == "succeeded":
                    break
                assert time.monotonic() < deadline, detail
                time.sleep(0.3)
            assert [x["id"] for x in detail["refunds"]] == [refund["id"]]
            assert detail["amount_refunded"] == "5.00"
            assert set(latipay_refund_numbers(proxy)) == {refund["provider_refund_no"]}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proxy.close()
