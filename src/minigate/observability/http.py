"""The operations routes: ``/healthz`` (alive), ``/readyz`` (ready for traffic), ``/metrics``.

* ``/healthz`` answers as long as the process serves HTTP: a liveness probe that restarts
  minigate when the database is down would only add restarts to the outage.
* ``/readyz`` is 200 only when the database answers, its schema is at this minigate's head
  revision, and (when the job runner runs in this process) the runner is alive; else 503
  with each check's result, so a load balancer stops sending traffic.
* ``/metrics`` is Prometheus' text format. Open in sandbox mode; in live mode it needs
  ``Authorization: Bearer <metrics_token>`` and answers 403 while no token is configured.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from minigate import __version__
from minigate.observability.metrics import exposition, read_snapshot
from minigate.observability.requestid import RequestIdMiddleware

READY_TIMEOUT = 3.0


def install(app: FastAPI, runtime: Any) -> None:
    """Add the request-id middleware and the operations routes to ``app``."""
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the process answers HTTP (the database is not consulted)."""
        return {"status": "ok", "version": __version__,
                "mode": "sandbox" if runtime.sandbox_mode else "live"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Readiness: database reachable, schema at head, job runner alive (if in-process)."""
        checks = await readiness(runtime)
        ready = all(ok for ok, _ in checks.values())
        body = {"status": "ready" if ready else "not_ready",
                "checks": {name: {"ok": ok, "detail": detail}
                           for name, (ok, detail) in checks.items()}}
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=True)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (bearer ``metrics_token`` in live mode)."""
        refusal = _refusal(runtime, request.headers.get("authorization", ""))
        if refusal is not None:
            return refusal
        snapshot = await read_snapshot(runtime)
        return Response(exposition(snapshot), media_type=CONTENT_TYPE_LATEST)


def _refusal(runtime: Any, authorization: str) -> Response | None:
    if runtime.sandbox_mode:
        return None
    token = runtime.settings.metrics_token
    if token is None:
        return JSONResponse({"error": {"type": "invalid_request_error", "code": "metrics_closed",
                                       "message": "set metrics_token to read /metrics"}}, 403)
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()):
        return JSONResponse({"error": {"type": "authentication_error", "code": "unauthorized",
                                       "message": "Authorization: Bearer <metrics_token>"}},
                            401, headers={"WWW-Authenticate": "Bearer"})
    return None


async def readiness(runtime: Any) -> dict[str, tuple[bool, str]]:
    """Each readiness check: (passed, detail)."""
    from minigate.preflight import schema_state

    checks: dict[str, tuple[bool, str]] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            state = await schema_state(runtime.engine)
        checks["database"] = (True, "reachable")
        checks["schema"] = (state.at_head, ", ".join(state.current) or "empty")
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        checks["database"] = (False, type(exc).__name__)
        checks["schema"] = (False, "unknown")
    runner = runtime.runner
    if runtime.run_jobs:
        alive = runner is not None and runner.alive
        checks["jobs"] = (alive, "running" if alive else "stopped")
    return checks
