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
    """Rewrites a record's message with every URL query value replaced by ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _QUERY_VALUE.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_redaction() -> None:
    for name in ("httpx", "httpcore", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryValues) for f in logger.filters):
            logger.addFilter(RedactQueryValues())
