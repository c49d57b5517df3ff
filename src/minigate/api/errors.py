"""One error shape everywhere: ``{"error": {"type", "code", "message", "param"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from minigate.domain.money import MoneyError
from minigate.domain.states import IllegalTransition
from minigate.errors import MinigateError

log = logging.getLogger("minigate.api")


def error_body(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "code": code, "message": message}
    if param:
        error["param"] = param
    return {"error": error}


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


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
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
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

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        # A dropped or unreachable database connection: the transaction was rolled back,
        # so the request may simply be sent again.
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            log.warning("database unavailable: %s", type(exc.orig).__name__)
            return JSONResponse(error_body("api_error", "database_unavailable",
                                           "database unavailable; nothing was changed, retry"),
                                503, headers={"Retry-After": "1"})
        log.exception("unhandled database error")
        return JSONResponse(error_body("api_error", "internal_error",
                                       "internal error; nothing was changed by this request"),
                            500)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("api_error", "internal_error",
                                       "internal error; nothing was changed by this request"),
                            500)
