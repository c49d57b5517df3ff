"""Provider callbacks run on their own lane (``api/notify.Lane``): past the framework's
routing, but through the same guards as every request — request id, body limit, error
mapping, last resort. Anything that is not ``POST /v1/notify/{provider}`` takes the full
stack."""

from __future__ import annotations

from typing import Any

import pytest

from minigate.api import notify
from tests.support import Harness


async def test_unknown_provider_is_the_error_shape_with_a_request_id(
    sqlite_gateway: Harness,
) -> None:
    r = await sqlite_gateway.api.post("/v1/notify/nosuch", content=b"a=1",
                                      headers={"X-Request-Id": "req_lane_test_1"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.headers["x-request-id"] == "req_lane_test_1"


async def test_other_shapes_take_the_full_stack(sqlite_gateway: Harness) -> None:
    api = sqlite_gateway.api
    deeper = await api.post("/v1/notify/latipay/extra", content=b"a=1")
    assert deeper.status_code == 404 and deeper.json()["error"]["code"] == "not_found"
    wrong = await api.get("/v1/notify/latipay")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert deeper.headers["x-request-id"].startswith("req_")


async def test_a_bug_is_a_500_in_the_error_shape_and_logged_once(
    sqlite_gateway: Harness, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug in the notification path")

    monkeypatch.setattr(notify, "handle_notification", broken)
    r = await sqlite_gateway.api.post("/v1/notify/latipay", content=b"a=1")
    assert r.status_code == 500 and r.json()["error"]["type"] == "api_error"
    assert r.headers["x-request-id"].startswith("req_")
    assert sum("a bug in the notification path" in (rec.exc_text or rec.getMessage())
               or (rec.exc_info and "a bug" in str(rec.exc_info[1]))
               for rec in caplog.records) == 1


async def test_the_body_limit_applies_on_the_lane(sqlite_gateway: Harness) -> None:
    too_big = b"a=" + b"x" * (70 * 1024)
    r = await sqlite_gateway.api.post("/v1/notify/latipay", content=too_big)
    assert r.status_code == 413 and r.headers["x-request-id"].startswith("req_")
