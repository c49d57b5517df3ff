"""One error shape everywhere: ``{"error": {"type", "code", "message", "param"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minigate.domain.money import MoneyError
from minigate.domain.states import IllegalTransition
from minigate.errors import MinigateError
from minigate.observability.metrics import count_database_unavailable
from minigate.store.failures import database_unavailable

log = logging.getLogger("minigate.api")


def error_body(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "code": code, "message": message}
    if param:
        error["param"] = param
    return {"error": error}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                   for route in routes)]


def install(app: FastAPI) -> None:
    @app.exception_handler(MinigateError)
    async def _minigate(_: Request, exc: MinigateError) -> JSONResponse:
        return JSONResponse(error_body(exc.type, exc.code, exc.message, exc.param), exc.status)

    @app.exception_handler(MoneyError)
    async def _money(_: Request, exc: MoneyError) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_request_error", f"invalid_{exc.param}", str(exc), exc.param), 400)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ())
               if p not in ("body", "query", "path", "header", "cookie")]
        param = ".".join(loc) or None
        kind = first.get("type", "")
        code = "missing_field" if kind == "missing" else "invalid_field"
        message = f"{param}: {first.get('msg', 'invalid')}" if param else "request body is invalid"
        return JSONResponse(error_body("invalid_request_error", code, message, param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 400 here is FastAPI's "There was an error parsing the body" (e.g. not UTF-8).
        code = {400: "invalid_body", 404: "not_found",
                405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(error_body("invalid_request_error", code, str(exc.detail)),
                            exc.status_code, headers=headers or None)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(error_body("invalid_request_error", "conflict", str(exc)), 409)

    app.add_middleware(CatchAll)


#: Seconds a client should wait before retrying after a database outage.
RETRY_AFTER = "1"
DATABASE_UNAVAILABLE = ("the database is unavailable; the request may not have completed: "
                        "retry it with the same Idempotency-Key")
INTERNAL = ("internal error (logged); the request may not have completed: retry it with the "
            "same Idempotency-Key")


def failure_response(exc: BaseException) -> JSONResponse:
    """The answer for an exception no handler claimed: a retryable 503 for a database outage
    (classified in one place, ``store.failures``), else a 500. Logs it once."""
    if database_unavailable(exc):
        count_database_unavailable("api")
        log.warning("database unavailable: %s", _describe(exc))
        return JSONResponse(error_body("api_error", "database_unavailable", DATABASE_UNAVAILABLE),
                            503, headers={"Retry-After": RETRY_AFTER})
    log.error("unhandled error", exc_info=exc)
    return JSONResponse(error_body("api_error", "internal_error", INTERNAL), 500)


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    inner = orig if orig is not None else (exc.__cause__ or exc)
    return f"{type(inner).__name__}: {str(inner)[:120]}"


class CatchAll:
    """Innermost guard for what no exception handler claimed.

    Starlette's own last resort (``ServerErrorMiddleware``) answers 500 and then re-raises,
    so the server logs a second traceback and drops the client's keep-alive connection —
    during a database outage, every connection. This layer answers instead and returns
    normally: one log line (or one traceback for a real bug), the connection kept.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            response = failure_response(exc)
            if not started:
                await response(scope, receive, send)
