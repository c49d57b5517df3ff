"""Logging: one format for every line (ours, uvicorn's, httpx's), never carrying secrets.

:func:`configure_logging` routes every standard-library logger through one structlog
``ProcessorFormatter``: ``text`` (``time level logger message key=value…``) or ``json``
(one object per line). Each line carries the HTTP request's id while one is running
(:mod:`minigate.observability.requestid`).

What never reaches a line:

* URL query values (httpx logs request URLs, and some provider URLs carry secrets:
  ``jscode2session?secret=…``, Latipay ``?signature=…``): blanked by a filter on the HTTP
  client loggers before the record is formatted anywhere, and again on the finished line;
* order client tokens (``ct_…``) and bearer credentials;
* every secret value of the running configuration (API keys, provider keys, the database
  password), registered with :func:`register_secrets` at start and replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from minigate.observability.requestid import request_id

_QUERY_VALUE = re.compile(r"([?&][^=&\s\"']+=)[^&\s\"']*")
_CLIENT_TOKEN = re.compile(r"ct_[A-Za-z0-9_-]{8,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
#: Values registered by :func:`register_secrets`, longest first.
_secrets: list[str] = []


def register_secrets(values: Iterable[str]) -> None:
    """Replace each of ``values`` (the configuration's secrets) by ``***`` in every line."""
    known = set(_secrets) | {v for v in values if len(v) >= 6}
    _secrets[:] = sorted(known, key=len, reverse=True)


def redact(line: str) -> str:
    """``line`` without query values, client tokens, bearer credentials or known secrets."""
    line = _QUERY_VALUE.sub(r"\1***", line)
    line = _CLIENT_TOKEN.sub("ct_***", line)
    line = _BEARER.sub(r"\1***", line)
    for secret in _secrets:
        if secret in line:
            line = line.replace(secret, "***")
    return line


class RedactQueryValues(logging.Filter):
    """Replaces every URL query value in a record's message and arguments by ``***``.

    The arguments stay arguments (redacted one by one), so formatters that read
    ``record.args`` positionally, such as uvicorn's access formatter, keep working.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _QUERY_VALUE.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_arg(arg) for key, arg in record.args.items()}
        return True


def _redact_arg(arg: object) -> object:
    if isinstance(arg, int | float | bool) or arg is None:
        return arg  # numbers keep their type (``%d``)
    text = str(arg)
    redacted = _QUERY_VALUE.sub(r"\1***", text)
    return redacted if redacted != text else arg


def install_redaction() -> None:
    # httpx says INFO for every request: a routine provider call is one DEBUG line of
    # minigate.providers instead (with its outcome and duration).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("httpx", "httpcore", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryValues) for f in logger.filters):
            logger.addFilter(RedactQueryValues())


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    rid = request_id.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def _text(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    head = (f"{event.pop('timestamp', '')} {str(event.pop('level', '')).upper():<7} "
            f"{event.pop('logger', '')}: {event.pop('event', '')}")
    trace = event.pop("exception", None)
    rest = " ".join(f"{k}={v}" for k, v in event.items())
    line = f"{head} {rest}" if rest else head
    return f"{line}\n{trace}" if trace else line


def _json(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    return json.dumps(event, default=str, separators=(",", ":"))


def _redacted(renderer: Any) -> Any:
    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        return redact(str(renderer(logger, name, event)))
    return render


def make_handler(fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A handler that writes records as ``fmt`` lines (``text`` or ``json``), redacted."""
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    _redacted(_json if fmt == "json" else _text)],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    return handler


def configure_logging(level: str = "INFO", fmt: str = "text",
                      stream: TextIO | None = None) -> None:
    """Send every logger's records to one handler in ``fmt`` (``text`` or ``json``)."""
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers: no handlers of their own, so their lines take our format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The chatter below minigate's own lines stays out even at DEBUG.
    for name in ("httpcore", "aiosqlite", "asyncio", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING if name == "alembic"
                                             else logging.INFO, root.level))
    install_redaction()
