"""Money operations survive a SIGKILL at any point: real `minigate serve` processes killed
while a refund is at the provider and at every crash point of order and refund creation;
a retry with the same Idempotency-Key resumes, and the provider sees exactly one refund."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.faults import FaultProxy, expire_idempotency_locks, latipay_refund_numbers
from tests.e2e.test_processes import _free_port, _start, _wait_healthy

KEY = "sk_test_crash_money"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class World:
    """``main``: a minigate process hosting the simulators, with jobs on; every provider
    call (its own and the doomed process's) goes through ``proxy``."""

    base: str
    env: dict[str, str]
    proxy: FaultProxy
    http: httpx.Client
    tmp: Path

    def doomed(self, **env: str) -> tuple[subprocess_t, str]:
        port = _free_port()
        proc = _start("serve", {**self.env, "MINIGATE_RUN_JOBS": "false", **env}, self.tmp,
                      "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        return proc, url

    def paid_order(self, reference: str, amount: str = "10.00") -> dict[str, Any]:
        order = self.http.post("/v1/orders", headers=AUTH, json={
            "merchant_reference": reference, "amount": amount, "currency": "NZD",
            "description": "Cake", "channel": "wechat"}).json()
        code = self.http.post("/sandbox/wallet/login", json={"user": "erin"}).json()["code"]
        pay = self.http.post(f"/v1/client/orders/{order['id']}/pay", json={
            "client_token": order["client_token"], "login_code": code}).json()
        assert self.http.post("/sandbox/wallet/requestPayment", json=pay["wechat"]).json() \
            == {"errMsg": "requestPayment:ok"}
        self.wait_for(order["id"], lambda o: o["status"] == "paid")
        return order

    def order(self, order_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/orders/{order_id}", headers=AUTH).json())

    def wait_for(self, order_id: str, done: Any, timeout: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = self.order(order_id)
            if done(order) or time.monotonic() > deadline:
                return order
            time.sleep(0.2)


subprocess_t = Any


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proxy = FaultProxy(base, hold=lambda method, path, body: False)
    env = {**os.environ, "MINIGATE_DATABASE_URL": database_url, "MINIGATE_API_KEY": KEY,
           "MINIGATE_PUBLIC_URL": proxy.url, "MINIGATE_MODE": "sandbox",
           "MINIGATE_RECONCILE_SCHEDULE": "[1]", "MINIGATE_SANDBOX__TIME_SCALE": "0.01",
           "MINIGATE_JOB_LEASE_SECONDS": "3"}
    env.pop("MINIGATE_CRASH_AT", None)
    main = _start("serve", env, tmp_path, "--port", str(port))
    try:
        _wait_healthy(base, main)
        with httpx.Client(base_url=base, timeout=30) as http:
            yield World(base, env, proxy, http, tmp_path)
    finally:
        main.terminate()
        main.wait(timeout=10)
        proxy.close()


def _refund(url: str, order_id: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/orders/{order_id}/refunds", json={"amount": "5.00"},
                      headers={**AUTH, "Idempotency-Key": key}, timeout=30)


def _assert_refunded_once(w: World, order_id: str, refund_id: str) -> None:
    final = w.wait_for(order_id, lambda o: o["amount_refunded"] == "5.00"
                       and all(r["status"] == "succeeded" for r in o["refunds"]))
    assert [r["id"] for r in final["refunds"]] == [refund_id]
    assert final["amount_refunded"] == "5.00" and final["status"] == "partially_refunded"
    time.sleep(1.5)  # a few more reconciler passes: nothing may happen twice
    again = w.order(order_id)
    assert again["amount_refunded"] == "5.00" and len(again["refunds"]) == 1
    # At the provider: one refund number, however often it was (re)sent under it.
    assert set(latipay_refund_numbers(w.proxy)) <= {final["refunds"][0]["provider_refund_no"]}
    assert len(latipay_refund_numbers(w.proxy)) >= 1


def test_killed_while_refund_is_at_the_provider(world: World, database_url: str) -> None:
    w = world
    order = w.paid_order("crash-at-provider")
    w.proxy.hold = lambda method, path, body: path.endswith("/sandbox/latipay/refund")
    doomed, url = w.doomed()
    threading.Thread(target=lambda: _swallow(_refund, url, order["id"], "refund-1"),
                     daemon=True).start()
    assert w.proxy.holding.wait(30), "the refund never reached the provider"
    doomed.kill()  # SIGKILL while the provider has the refund and its answer is in flight
    doomed.wait(timeout=10)
    w.proxy.hold = None
    w.proxy.release.set()

    expire_idempotency_locks(database_url)  # "after the lock"
    retry = _refund(w.base, order["id"], "refund-1")
    assert retry.status_code == 201, retry.text
    refund = retry.json()
    assert refund["amount"] == "5.00"
    _assert_refunded_once(w, order["id"], refund["id"])
    # The same key, once more: the same refund, answered from the store.
    assert _refund(w.base, order["id"], "refund-1").json()["id"] == refund["id"]


@pytest.mark.parametrize("point", ["refund.reserved", "refund.claimed", "refund.answered"])
def test_refund_killed_at_each_crash_point_resumes(world: World, database_url: str,
                                                   point: str) -> None:
    w = world
    order = w.paid_order(f"crash-{point}")
    doomed, url = w.doomed(MINIGATE_CRASH_AT=point)
    with pytest.raises(httpx.TransportError):
        _refund(url, order["id"], "refund-2")
    doomed.wait(timeout=10)
    assert doomed.returncode == -9  # it really died at the crash point
    expire_idempotency_locks(database_url)
    retry = _refund(w.base, order["id"], "refund-2")
    assert retry.status_code == 201, retry.text
    _assert_refunded_once(w, order["id"], retry.json()["id"])


def test_order_creation_killed_after_commit_resumes(world: World, database_url: str) -> None:
    w = world
    body = {"merchant_reference": "crash-order", "amount": "7.00", "currency": "NZD",
            "description": "Bread", "channel": "wechat"}
    doomed, url = w.doomed(MINIGATE_CRASH_AT="order.committed")
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{url}/v1/orders", json=body, headers={**AUTH, "Idempotency-Key": "o-1"})
    doomed.wait(timeout=10)
    assert doomed.returncode == -9
    expire_idempotency_locks(database_url)
    retry = w.http.post("/v1/orders", json=body, headers={**AUTH, "Idempotency-Key": "o-1"})
    assert retry.status_code == 201, retry.text
    listed = w.http.get("/v1/orders", headers=AUTH).json()["data"]
    assert [o["id"] for o in listed if o["merchant_reference"] == "crash-order"] \
        == [retry.json()["id"]]
    assert retry.json()["client_token"].startswith("ct_")  # the replay keeps the token
    # Another key, same reference: refused, naming the order that has it.
    other = w.http.post("/v1/orders", json=body, headers={**AUTH, "Idempotency-Key": "o-2"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "duplicate_merchant_reference"
    assert retry.json()["id"] in other.json()["error"]["message"]


def _swallow(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except httpx.HTTPError:
        pass
