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
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from minigate import __version__
from minigate.api.errors import error_body
from minigate.observability.metrics import exposition, read_snapshot
from minigate.observability.requestid import RequestIdMiddleware

READY_TIMEOUT = 3.0

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_HEALTHZ: dict[int | str, dict[str, Any]] = {200: {
    "description": "The process serves HTTP.",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["status", "version", "mode"],
        "properties": {"status": {"const": "ok"}, "version": {"type": "string"},
                       "mode": {"enum": ["sandbox", "live"]}}}}}}}
_CHECKS = {"type": "object", "required": ["status", "checks"], "properties": {
    "status": {"enum": ["ready", "not_ready"]},
    "checks": {"type": "object", "additionalProperties": {
        "type": "object", "required": ["ok", "detail"],
        "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}}}}}}
_READYZ: dict[int | str, dict[str, Any]] = {
    200: {"description": "Ready: every check passed.",
          "content": {"application/json": {"schema": _CHECKS}}},
    503: {"description": "Not ready: the checks say which failed.",
          "content": {"application/json": {"schema": _CHECKS}}}}
_METRICS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text exposition format 0.0.4.",
          "content": {"text/plain": {"schema": {"type": "string"}}}},
    401: {"description": "Live mode: missing or wrong `Authorization: Bearer <metrics_token>`.",
          "content": _ERROR},
    403: {"description": "Live mode with no `metrics_token` configured.", "content": _ERROR}}


def install(app: FastAPI, runtime: Any) -> None:
    """Add the request-id middleware and the operations routes to ``app``."""
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["ops"], operation_id="healthz", responses=_HEALTHZ)
    async def healthz() -> dict[str, Any]:
        """Liveness: the process answers HTTP (the database is not consulted)."""
        return {"status": "ok", "version": __version__,
                "mode": "sandbox" if runtime.sandbox_mode else "live"}

    @app.get("/readyz", tags=["ops"], operation_id="readyz", response_class=JSONResponse,
             responses=_READYZ)
    async def readyz() -> JSONResponse:
        """Readiness: database reachable, schema at head, job runner alive (if in-process)."""
        checks = await readiness(runtime)
        ready = all(ok for ok, _ in checks.values())
        body = {"status": "ready" if ready else "not_ready",
                "checks": {name: {"ok": ok, "detail": detail}
                           for name, (ok, detail) in checks.items()}}
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/metrics", tags=["ops"], operation_id="metrics", response_class=PlainTextResponse,
             responses=_METRICS)
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
        return JSONResponse(error_body("invalid_request_error", "http_error",
                                       "/metrics is closed in live mode until metrics_token "
                                       "is set"), 403)
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()):
        return JSONResponse(error_body("authentication_error", "unauthorized",
                                       "missing or wrong Authorization: Bearer <metrics_token>"),
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
