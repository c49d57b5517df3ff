"""The merchant's server behind the sample mini programs, in one short FastAPI file.

It does the two things a shop's backend does around minigate:

* ``POST /checkout`` — the mini program says *what* the shopper buys (never how much); the
  server prices it, creates the order in minigate with the secret API key, and hands back
  only ``order_id`` and ``client_token``, which is all the mini program needs to pay.
* ``POST /hooks/minigate`` — minigate's signed webhook: the order is fulfilled here, on
  ``order.paid``, and nowhere else (not on the mini program's word).

Run it next to a sandbox minigate (see docs/miniprogram.md)::

    SHOP_MINIGATE_URL=http://127.0.0.1:8000 MINIGATE_API_KEY=sk_test_tour \\
    SHOP_WEBHOOK_SECRET=whsec_tour \\
    .venv/bin/uvicorn app:app --app-dir examples/merchant-server --port 8100
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from typing import Any, Literal

import httpx
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

SHOP_MINIGATE_URL = os.environ.get("SHOP_MINIGATE_URL", "http://127.0.0.1:8000").rstrip("/")
API_KEY = os.environ["MINIGATE_API_KEY"]
WEBHOOK_SECRET = os.environ.get("SHOP_WEBHOOK_SECRET", "")

#: Prices live on the server. (minigate's sandbox default provider, Latipay, takes NZD.)
CATALOG: dict[str, tuple[str, str, str]] = {
    "flat-white": ("Flat white", "5.50", "NZD"),
    "pinot-noir": ("Pinot Noir, Otago", "42.00", "NZD"),
}

#: The shop's own order book (a database in a real shop): reference -> order.
ORDERS: dict[str, dict[str, Any]] = {}

app = FastAPI(title="minigate sample merchant")


class Checkout(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    channel: Literal["wechat", "alipay"]


@app.post("/checkout")
async def checkout(body: Checkout) -> dict[str, str]:
    item = CATALOG.get(body.sku)
    if item is None:
        raise HTTPException(404, "no such product")
    description, amount, currency = item
    reference = "shop-" + secrets.token_hex(8)
    async with httpx.AsyncClient(base_url=SHOP_MINIGATE_URL, timeout=10) as minigate:
        answer = await minigate.post(
            "/v1/orders",
            headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": reference},
            json={"merchant_reference": reference, "amount": amount, "currency": currency,
                  "description": description, "channel": body.channel},
        )
    if answer.status_code != 201:
        raise HTTPException(502, "could not create the order")
    order = answer.json()
    ORDERS[reference] = {"order_id": order["id"], "sku": body.sku, "fulfilled": False}
    return {"reference": reference, "order_id": order["id"],
            "client_token": order["client_token"], "amount": amount, "currency": currency}


@app.get("/orders/{reference}")
async def shop_order(reference: str) -> dict[str, Any]:
    order = ORDERS.get(reference)
    if order is None:
        raise HTTPException(404, "no such order")
    return order


@app.post("/hooks/minigate")
async def minigate_webhook(request: Request) -> dict[str, bool]:
    raw = await request.body()  # verify the raw bytes before parsing them
    if not WEBHOOK_SECRET or not _verified(request.headers.get("Minigate-Signature", ""), raw):
        raise HTTPException(400, "bad signature")
    event = json.loads(raw)
    if event["type"] == "order.paid":
        reference = event["data"]["order"]["merchant_reference"]
        if reference in ORDERS:
            ORDERS[reference]["fulfilled"] = True  # idempotent: a redelivery changes nothing
    return {"received": True}


def _verified(header: str, raw: bytes, tolerance: int = 300) -> bool:
    """``t=<unix>,v1=<hex>``: HMAC-SHA256 of ``"<t>.<raw body>"``, compared in constant time."""
    fields = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for key, _, value in fields if key == "t" and value.isdigit()]
    if not stamps or abs(time.time() - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(WEBHOOK_SECRET.encode(), stamps[0].encode() + b"." + raw,
                        hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, _, value in fields if key == "v1")
