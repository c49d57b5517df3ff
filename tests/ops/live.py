"""minigate in live mode, in-process, with an HTTP client on its app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from minigate.app import Runtime, create_app
from minigate.config import load_settings

LATIPAY = {"user_id": "U1", "wallet_id": "W1", "api_key": "lk_live_canary"}


@asynccontextmanager
async def live_app(database_url: str, *, migrate: bool = True, run_jobs: bool = False,
                   **overrides: Any) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    settings = load_settings(**{"mode": "live", "api_key": "sk_live_ops",
                                "database_url": database_url, "latipay": LATIPAY,
                                **overrides})
    runtime = Runtime(settings, auto_migrate=migrate, run_jobs=run_jobs)
    app = create_app(settings, runtime)
    await runtime.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://minigate.test") as http:
            yield runtime, http
    finally:
        await runtime.stop()
