"""jscode2session: the client's error mapping and the simulator's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from minigate.clock import FrozenClock
from minigate.errors import InvalidRequest, ProviderUnavailable, RateLimited
from minigate.login import LoginBlocked, build_jscode2session, parse_jscode2session
from minigate.providers.base import HttpResponse
from minigate.sandbox.login import LoginSim


def _answer(data: dict[str, object]) -> HttpResponse:
    return HttpResponse(200, {}, json.dumps(data).encode())


def test_success_without_errcode() -> None:
    assert parse_jscode2session(_answer({"openid": "oABC", "session_key": "k"})) == "oABC"


@pytest.mark.parametrize(("errcode", "error", "status"), [
    (40029, InvalidRequest, 400), (45011, RateLimited, 429), (40226, LoginBlocked, 403),
    (-1, ProviderUnavailable, 503),
])
def test_documented_errors(errcode: int, error: type[Exception], status: int) -> None:
    with pytest.raises(error) as info:
        parse_jscode2session(_answer({"errcode": errcode, "errmsg": "x"}))
    assert info.value.status == status  # type: ignore[attr-defined]


def test_request_is_a_get_with_grant_type() -> None:
    req = build_jscode2session("https://api.weixin.qq.com", "wxA", "S", "CODE")
    assert req.method == "GET"
    assert req.url == ("https://api.weixin.qq.com/sns/jscode2session?appid=wxA&secret=S"
                       "&js_code=CODE&grant_type=authorization_code")


def _sim() -> tuple[LoginSim, FrozenClock]:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    return LoginSim(clock, {"wxA": "S"}), clock


def test_codes_are_single_use_and_expire_after_five_minutes() -> None:
    sim, clock = _sim()
    code = sim.issue_code("alice", "wxA")
    first = sim.jscode2session("wxA", "S", code)
    assert first["openid"] == sim.openid_for("wxA", "alice")
    assert sim.jscode2session("wxA", "S", code)["errcode"] == 40029
    late = sim.issue_code("alice", "wxA")
    clock.advance(301)
    assert sim.jscode2session("wxA", "S", late)["errcode"] == 40029


def test_wrong_secret_and_other_app() -> None:
    sim, _ = _sim()
    assert sim.jscode2session("wxA", "wrong", sim.issue_code("a", "wxA"))["errcode"] == 40029
    assert sim.jscode2session("wxB", "S", sim.issue_code("a", "wxA"))["errcode"] == 40029


def test_minute_quota_and_injected_fault() -> None:
    sim, _ = _sim()
    answers = [sim.jscode2session("wxA", "S", sim.issue_code("busy", "wxA"))
               for _ in range(101)]
    assert "openid" in answers[99] and answers[100]["errcode"] == 45011
    sim.fail_next = 1
    assert sim.jscode2session("wxA", "S", sim.issue_code("x", "wxA"))["errcode"] == -1


def test_openids_differ_per_app() -> None:
    sim, _ = _sim()
    assert sim.openid_for("wxA", "alice") != sim.openid_for("wxB", "alice")
