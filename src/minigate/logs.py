"""Logging that never carries secrets.

httpx logs every request URL at INFO, and some provider URLs carry secrets in their query
(``jscode2session?secret=…``, Latipay ``?signature=…``). A filter on the HTTP client
loggers blanks every query value before the record is formatted anywhere.
"""

from __future__ import annotations

import logging
import re

_QUERY_VALUE = re.compile(r"([?&][^=&\s\"']+=)[^&\s\"']*")


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
    for name in ("httpx", "httpcore", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryValues) for f in logger.filters):
            logger.addFilter(RedactQueryValues())
