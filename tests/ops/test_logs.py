"""The log formats: one line per record, the request id, and redaction on the finished line."""

from __future__ import annotations

import io
import json
import logging

from minigate.logs import make_handler, register_secrets
from minigate.observability.requestid import request_id


def _emit(fmt: str, message: str, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    logger = logging.getLogger("minigate.test_logs")
    logger.propagate = False
    handler = make_handler(fmt, stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    token = request_id.set("req_test_1")
    try:
        if exc:
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception(message, *args)
        else:
            logger.info(message, *args)
    finally:
        request_id.reset(token)
        logger.removeHandler(handler)
    return stream.getvalue()


def test_text_lines_carry_level_logger_and_request_id() -> None:
    line = _emit("text", "paid %s", "ord_1")
    assert line.endswith("INFO    minigate.test_logs: paid ord_1 request_id=req_test_1\n")


def test_json_lines_are_one_object_each() -> None:
    entry = json.loads(_emit("json", "paid %s", "ord_1"))
    assert entry["event"] == "paid ord_1" and entry["level"] == "info"
    assert entry["request_id"] == "req_test_1" and entry["logger"] == "minigate.test_logs"
    failed = json.loads(_emit("json", "failed", exc=True))
    assert "ValueError: boom" in failed["exception"]


def test_secrets_are_redacted_on_the_finished_line() -> None:
    register_secrets(["sk_live_registered_canary", "short"])
    text = _emit("text", "GET /x?client_token=ct_abcdefghijklmnop&sig=s3 key=%s auth=%s",
                 "sk_live_registered_canary", "Bearer tok_bearer_canary")
    assert "sk_live_registered_canary" not in text and "ct_abcdefghijklmnop" not in text
    assert "s3" not in text and "tok_bearer_canary" not in text
    assert "?client_token=***&sig=***" in text and "Bearer ***" in text
    assert "short" in _emit("text", "short words stay")  # under 6 characters: not a secret
