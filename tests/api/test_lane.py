"""The lane (``api/lane.py``): provider callbacks, order creation and pay run past the
framework's routing, but through the same guards as every request — request id, body
limit, error mapping, last resort — and answer exactly as their FastAPI routes do: every
request here is sent both ways (the lane, and the full stack alone) and the answers are
compared. Anything that is not one of the lane's requests takes the full stack."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import orjson
import pytest

from minigate.api import lane, notify
from tests.support import API_KEY, Harness


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


# --- the lane and the full stack answer alike ------------------------------------------


class Both:
    """The app as served (``lane``) and its full stack alone (``full``), with a count of
    the requests that reached the full stack."""

    def __init__(self, harness: Harness) -> None:
        transport = harness.network.routes["minigate.test"]
        assert isinstance(transport, httpx.ASGITransport)
        app: Any = transport.app
        self.reached_full = 0

        async def full_only(scope: Any, receive: Any, send: Any) -> None:
            scope["app"] = app
            if app.middleware_stack is None:
                app.middleware_stack = app.build_middleware_stack()
            await app.middleware_stack.full(scope, receive, send)

        stack = app.middleware_stack or app.build_middleware_stack()
        app.middleware_stack = stack
        assert isinstance(stack, lane.Lane)
        inner_full = stack.full

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"].startswith("/v1/"):  # not the simulators minigate calls
                self.reached_full += 1
            await inner_full(scope, receive, send)

        stack.full = counting
        harness.network.routes["full.test"] = httpx.ASGITransport(app=full_only)
        self.lane = harness.api
        self.full = httpx.AsyncClient(transport=harness.network, base_url="http://full.test",
                                      timeout=10)

    async def both(self, method: str, path: str, **kwargs: Any
                   ) -> tuple[httpx.Response, httpx.Response]:
        return (await self.lane.request(method, path, **kwargs),
                await self.full.request(method, path, **kwargs))


def _order(**overrides: Any) -> dict[str, Any]:
    body = {"merchant_reference": "L-" + secrets.token_hex(5), "amount": "12.30",
            "currency": "NZD", "description": "Flat white", "channel": "wechat"}
    body.update(overrides)
    return body


def _same_error(lane_answer: httpx.Response, full_answer: httpx.Response) -> None:
    assert lane_answer.status_code == full_answer.status_code, (lane_answer.text,
                                                                 full_answer.text)
    assert lane_answer.content == full_answer.content
    assert lane_answer.headers.get("content-type") == full_answer.headers.get("content-type")
    assert lane_answer.headers["x-request-id"].startswith("req_")


JSON = {"Content-Type": "application/json"}


async def test_a_plain_create_is_served_on_the_lane_and_answers_as_the_route(
    sqlite_gateway: Harness,
) -> None:
    both = Both(sqlite_gateway)
    auth = sqlite_gateway.merchant()
    key = {"Idempotency-Key": "lane-" + secrets.token_hex(8)}
    body = _order(metadata={"cart": "a", "n": 1, "x": None, "w": 2.5, "ünï": "código"},
                  expires_in=600)
    served = await both.lane.post("/v1/orders", json=body, headers={**auth, **key})
    assert served.status_code == 201, served.text
    assert both.reached_full == 0  # the lane answered it
    # The same key and body through the full stack: the stored answer, byte for byte.
    replay = await both.full.post("/v1/orders", json=body, headers={**auth, **key})
    assert replay.status_code == 201 and replay.content == served.content
    # The same merchant_reference through each: the lane creates, the route refuses the copy.
    a, dup = await both.both("POST", "/v1/orders", headers=auth, json=_order(
        merchant_reference="same-ref-1"))
    assert a.status_code == 201 and dup.status_code == 409
    assert dup.json()["error"]["code"] == "duplicate_merchant_reference"
    dup_on_lane = await both.lane.post("/v1/orders", headers=auth,
                                       json=_order(merchant_reference="same-ref-1"))
    assert dup_on_lane.content == dup.content
    # A fresh order through the full stack: the same shape and values but ids and times.
    c = await both.full.post("/v1/orders", headers=auth, json=_order())
    volatile = {"id", "client_token", "merchant_reference", "created_at", "updated_at",
                "expires_at", "timeline"}
    lane_view, full_view = a.json(), c.json()
    assert lane_view.keys() == full_view.keys() == served.json().keys()
    assert {k: v for k, v in lane_view.items() if k not in volatile} == {
        k: v for k, v in full_view.items() if k not in volatile}
    assert [e["type"] for e in lane_view["timeline"]] == [
        e["type"] for e in full_view["timeline"]]


# (headers, raw body): every request the lane must leave to FastAPI, or answer as it does.
_AUTH = {"Authorization": "Bearer " + API_KEY}
_GOOD = orjson.dumps(_order(merchant_reference="never-created"))
REFUSED_CREATES: list[tuple[str, dict[str, str], bytes]] = [
    ("no key", JSON, _GOOD),
    ("wrong key", {**JSON, "Authorization": "Bearer sk_wrong"}, _GOOD),
    ("not a bearer", {**JSON, "Authorization": "Basic " + API_KEY}, _GOOD),
    ("not JSON", {**JSON, **_AUTH}, b"{merchant_reference: 1"),
    ("empty", {**JSON, **_AUTH}, b""),
    ("a list", {**JSON, **_AUTH}, b"[]"),
    ("a string", {**JSON, **_AUTH}, b'"order"'),
    ("text/plain", {"Content-Type": "text/plain", **_AUTH}, _GOOD),
    ("form", {"Content-Type": "application/x-www-form-urlencoded", **_AUTH}, b"amount=1"),
    ("no content type", _AUTH, b'{"amount": 1}'),
    ("NaN", {**JSON, **_AUTH}, b'{"amount": NaN}'),
    ("a byte-order mark", {**JSON, **_AUTH}, b"\xef\xbb\xbf{}"),
    ("not UTF-8", {**JSON, **_AUTH}, b'{"description": "\xff"}'),
    ("UTF-16", {"Content-Type": "application/json; charset=utf-16", **_AUTH},
     '{"amount": "1"}'.encode("utf-16")),
    ("an unknown field", {**JSON, **_AUTH}, orjson.dumps(_order(colour="blue"))),
    ("a missing field", {**JSON, **_AUTH}, orjson.dumps({"amount": "1.00"})),
    ("amount a number", {**JSON, **_AUTH}, orjson.dumps(_order(amount=12.3))),
    ("amount zero", {**JSON, **_AUTH}, orjson.dumps(_order(amount="0.00"))),
    ("too many decimals", {**JSON, **_AUTH}, orjson.dumps(_order(amount="1.234"))),
    ("a currency the provider does not take", {**JSON, **_AUTH},
     orjson.dumps(_order(currency="JPY", amount="100"))),
    ("an unknown channel", {**JSON, **_AUTH}, orjson.dumps(_order(channel="cash"))),
    ("expires too soon", {**JSON, **_AUTH}, orjson.dumps(_order(expires_in=5))),
    ("an empty Idempotency-Key", {**JSON, **_AUTH, "Idempotency-Key": ""}, _GOOD),
    ("a long Idempotency-Key", {**JSON, **_AUTH, "Idempotency-Key": "k" * 256}, _GOOD),
    ("a spaced Idempotency-Key", {**JSON, **_AUTH, "Idempotency-Key": "a b"}, _GOOD),
    ("bad key and bad body", {**JSON, "Authorization": "Bearer x"}, b"[1, 2]"),
    ("bad Idempotency-Key and bad body", {**JSON, **_AUTH, "Idempotency-Key": "a b"},
     orjson.dumps({"amount": 1})),
]


@pytest.mark.parametrize(("label", "headers", "content"), REFUSED_CREATES,
                         ids=[c[0] for c in REFUSED_CREATES])
async def test_a_refused_create_is_the_routes_own_answer(
    sqlite_gateway: Harness, label: str, headers: dict[str, str], content: bytes,
) -> None:
    both = Both(sqlite_gateway)
    lane_answer, full_answer = await both.both("POST", "/v1/orders", headers=headers,
                                               content=content)
    assert lane_answer.status_code >= 400, (label, lane_answer.text)
    _same_error(lane_answer, full_answer)
    listed = await sqlite_gateway.api.get("/v1/orders", headers=_AUTH)
    assert listed.json()["data"] == []  # nothing was created by either


async def test_a_huge_integer_in_metadata_stays_exact_on_the_lane(
    sqlite_gateway: Harness,
) -> None:
    """The lane parses as FastAPI does (orjson would have made this a float)."""
    both = Both(sqlite_gateway)
    huge = orjson.dumps(_order())[:-1] + b', "metadata": {"n": ' + b"9" * 40 + b"}}"
    created = await both.lane.post("/v1/orders", headers={**JSON, **_AUTH}, content=huge)
    assert created.status_code == 201, created.text
    assert both.reached_full == 0
    assert created.json()["metadata"] == {"n": int("9" * 40)}
    assert b'"n":' + b"9" * 40 in created.content


async def test_pay_on_the_lane_answers_as_the_route_byte_for_byte(
    sqlite_gateway: Harness,
) -> None:
    both = Both(sqlite_gateway)
    for channel in ("wechat", "alipay"):
        order = await sqlite_gateway.create_order(channel=channel, currency="NZD")
        code = await sqlite_gateway.login_code() if channel == "wechat" else None
        path = f"/v1/client/orders/{order['id']}/pay"
        pay = {"client_token": order["client_token"], "login_code": code}
        reached = both.reached_full
        served = await both.lane.post(path, json=pay)
        assert served.status_code == 200, served.text
        assert both.reached_full == reached  # the lane answered it
        # The prepay is reused while valid: the full stack's answer is the same bytes.
        again = await both.full.post(path, json=pay)
        assert again.status_code == 200 and again.content == served.content
        assert served.headers["content-type"] == again.headers["content-type"]
        assert channel in served.json() and None not in served.json().values()


async def test_a_refused_pay_is_the_routes_own_answer(sqlite_gateway: Harness) -> None:
    both = Both(sqlite_gateway)
    order = await sqlite_gateway.create_order()
    good = {"client_token": order["client_token"], "login_code": "x"}
    path = f"/v1/client/orders/{order['id']}/pay"
    cases: list[tuple[str, dict[str, str], bytes]] = [
        (path, JSON, orjson.dumps({**good, "client_token": "ct_wrong"})),
        (path, JSON, orjson.dumps({"login_code": "x"})),
        (path, JSON, orjson.dumps({**good, "extra": 1})),
        (path, JSON, b"{not json"),
        (path, {"Content-Type": "text/plain"}, orjson.dumps(good)),
        (path, JSON, b""),
        ("/v1/client/orders/ord.dot/pay", JSON, orjson.dumps(good)),
        ("/v1/client/orders/" + "o" * 65 + "/pay", JSON, orjson.dumps(good)),
        ("/v1/client/orders/ord_missing/pay", JSON, orjson.dumps(good)),
        (path, JSON, orjson.dumps({**good, "login_code": "not-a-code"})),
    ]
    for target, headers, content in cases:
        lane_answer, full_answer = await both.both("POST", target, headers=headers,
                                                   content=content)
        assert lane_answer.status_code >= 400, (target, content, lane_answer.text)
        _same_error(lane_answer, full_answer)
    status = await sqlite_gateway.api.get(f"/v1/orders/{order['id']}", headers=_AUTH)
    assert status.json()["status"] == "created"


def test_each_lane_route_is_the_route_the_full_stack_would_choose() -> None:
    """The lane answers a path before the router sees it: no other route may claim it."""
    from starlette.routing import Match

    from minigate.app import LANE_ROUTES, create_app
    from tests.support import harness_settings

    app = create_app(harness_settings("sqlite+aiosqlite:///unused.db"))
    samples = {"/v1/notify/{provider}": "/v1/notify/latipay", "/v1/orders": "/v1/orders",
               "/v1/client/orders/{order_id}/pay": "/v1/client/orders/ord_1/pay"}
    for method, template, _ in LANE_ROUTES:
        scope = {"type": "http", "method": method, "path": samples[template],
                 "root_path": "", "headers": []}
        first = next(r for r in app.router.routes if r.matches(scope)[0] is Match.FULL)
        assert getattr(first, "path", None) == template


# --- the simulators: served as the providers' servers would serve them -------------------


async def test_sandbox_requests_are_served_by_the_simulators_own_app(
    sqlite_gateway: Harness,
) -> None:
    """In sandbox mode a simulator's request skips minigate's own layers (request id, error
    envelope), as on ``minigate sandbox``: it stands for a request to a provider's server."""
    api = sqlite_gateway.api
    login = await api.post("/sandbox/wallet/login", json={"user": "lane"})
    assert login.status_code == 200 and login.json()["code"]
    assert "x-request-id" not in login.headers
    unknown = await api.get("/sandbox/no-such-simulator")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
    bad = await api.post("/sandbox/wallet/login", json={"nobody": 1})
    assert bad.status_code == 422 and "error" not in bad.json()
    # minigate's own paths still answer in minigate's shape, with a request id
    mine = await api.get("/v1/no-such-path")
    assert mine.status_code == 404 and mine.json()["error"]["code"] == "not_found"
    assert mine.headers["x-request-id"].startswith("req_")
    # /openapi.json still describes the simulators (sandbox mode)
    doc = (await api.get("/openapi.json")).json()
    assert "/sandbox/wallet/login" in doc["paths"]


async def test_the_body_limit_applies_to_the_simulators(sqlite_gateway: Harness) -> None:
    limit = sqlite_gateway.runtime.settings.http.max_body_bytes
    r = await sqlite_gateway.api.post("/sandbox/wallet/login", content=b"x" * (limit + 1),
                                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
