"""``minigate demo``: the whole flow for every provider × channel, over real HTTP.

It starts minigate in sandbox mode on a free port with a fresh SQLite file, then for each
row plays the merchant (creates an order), the mini program (login code → pay params), and
the shopper (pays in the simulated wallet); waits for the provider's signed notification to
mark the order paid; refunds part of it; and prints one table row. Exit 0 only if every row
ended as expected.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import uvicorn

from minigate.app import Runtime, create_app
from minigate.config import load_settings


@dataclass(frozen=True)
class DemoCase:
    provider: str
    channel: str
    currency: str
    amount: str
    refund: str
    #: What the table shows in the provider column (default: the provider id), e.g. to
    #: tell apart two API versions served by one provider id.
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.provider


#: One row per provider × channel. Each provider adds its own.
CASES: list[DemoCase] = [
    DemoCase("latipay", "wechat", "NZD", "12.30", "5.00"),
    DemoCase("latipay", "alipay", "NZD", "25.00", "10.00"),
    DemoCase("qfpay", "wechat", "HKD", "88.00", "30.00"),
    DemoCase("cbtis", "wechat", "HKD", "56.80", "6.80"),
    DemoCase("wechatpay", "wechat", "CNY", "88.80", "20.00", label="wechatpay-v3"),
    DemoCase("wechatpay-v2", "wechat", "CNY", "66.60", "16.60"),
]


@dataclass
class Row:
    case: DemoCase
    order_id: str = "-"
    status: str = "-"
    refund: str = "-"
    ms: int = 0
    ok: bool = False
    error: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_case(api: httpx.AsyncClient, headers: dict[str, str], case: DemoCase) -> Row:
    row = Row(case)
    started = time.perf_counter()
    try:
        await _play(api, headers, case, row)
    except Exception as exc:  # a row that fails is reported, the others still run
        row.error = f"{type(exc).__name__}: {exc}"[:200]
    row.ms = int((time.perf_counter() - started) * 1000)
    return row


async def _play(api: httpx.AsyncClient, headers: dict[str, str], case: DemoCase, row: Row) -> None:
    r = await api.post("/v1/orders", headers=headers | {"Idempotency-Key": secrets.token_hex(8)},
                       json={"merchant_reference": f"demo-{secrets.token_hex(4)}",
                             "amount": case.amount, "currency": case.currency,
                             "description": "minigate demo", "channel": case.channel,
                             "provider": case.provider})
    order = _ok(r, 201)
    row.order_id = order["id"]
    code = None
    if case.channel == "wechat":
        code = _ok(await api.post("/sandbox/wallet/login", json={"user": "demo-shopper"}))["code"]
    pay = _ok(await api.post(f"/v1/client/orders/{order['id']}/pay",
                             json={"client_token": order["client_token"], "login_code": code}))
    if case.channel == "wechat":
        paid = _ok(await api.post("/sandbox/wallet/requestPayment", json=pay["wechat"]))
        assert paid.get("errMsg") == "requestPayment:ok", paid
    else:
        paid = _ok(await api.post("/sandbox/wallet/tradePay", json=pay["alipay"]))
        assert paid.get("resultCode") == "9000", paid
    await _wait_paid(api, headers, order["id"], row)
    refund = _ok(await api.post(f"/v1/orders/{order['id']}/refunds", headers=headers,
                                json={"amount": case.refund, "reason": "demo"}), 201)
    refund = await _wait_refund(api, headers, refund)
    row.refund = f"{refund['amount']} {refund['status']}"
    final = _ok(await api.get(f"/v1/orders/{order['id']}", headers=headers))
    row.status = final["status"]
    row.ok = final["status"] == "partially_refunded" and refund["status"] == "succeeded"


async def _wait_paid(api: httpx.AsyncClient, headers: dict[str, str], order_id: str,
                     row: Row, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = _ok(await api.get(f"/v1/orders/{order_id}", headers=headers))
        row.status = order["status"]
        if order["status"] == "paid":
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"order still {row.status} after {timeout:.0f}s")


async def _wait_refund(api: httpx.AsyncClient, headers: dict[str, str], refund: dict[str, Any],
                       timeout: float = 20.0) -> dict[str, Any]:
    """Providers that accept refunds first (WeChat Pay) settle them by notification."""
    deadline = time.monotonic() + timeout
    while refund["status"] == "pending" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        refund = _ok(await api.get(f"/v1/refunds/{refund['id']}", headers=headers))
    return refund


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"HTTP {response.status_code} {response.text[:160]}")
    data: dict[str, Any] = response.json()
    return data


def print_table(rows: list[Row], out: TextIO) -> None:
    head = ("provider", "channel", "order", "final status", "refund", "ms", "")
    lines = [head] + [
        (r.case.title, r.case.channel, r.order_id, r.status, r.refund, str(r.ms),
         "ok" if r.ok else f"FAILED {r.error}") for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    for n, line in enumerate(lines):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + [line[-1]]
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


async def run_demo(out: TextIO = sys.stdout, cases: list[DemoCase] | None = None) -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_key = "sk_demo_" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="minigate-demo-") as tmp:
        db = Path(tmp) / "minigate.db"
        settings = load_settings(mode="sandbox", public_url=base, api_key=api_key,
                                 database_url=f"sqlite+aiosqlite:///{db}",
                                 sandbox={"time_scale": 0.01})
        app = create_app(settings, Runtime(settings))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                raise RuntimeError("minigate did not start")
            await asyncio.sleep(0.02)
        out.write(f"minigate sandbox on {base} (SQLite {db})\n\n")
        try:
            async with httpx.AsyncClient(base_url=base, timeout=15) as api:
                headers = {"Authorization": f"Bearer {api_key}"}
                rows = [await run_case(api, headers, case) for case in (cases or CASES)]
        finally:
            server.should_exit = True
            await serving
    print_table(rows, out)
    failed = [r for r in rows if not r.ok]
    out.write(f"\n{len(rows) - len(failed)}/{len(rows)} flows ended as expected\n")
    return 1 if failed else 0
