"""The dashboard over plain HTTP (in-process): sign-in, sessions, CSRF, headers, access."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest

from minigate.dashboard import web
from minigate.dashboard.security import COOKIE, SigninThrottle, hash_password
from tests.support import API_KEY, Harness, harness_settings, start_harness

PASSWORD = "a long enough dashboard password"
HASH = hash_password(PASSWORD)


@pytest.fixture
async def gw(sqlite_url: str) -> AsyncIterator[Harness]:
    settings = harness_settings(sqlite_url, dashboard={"users": {"ops": HASH},
                                                       "signin_delay_seconds": 0.5},
                                webhook_url="http://shop.test/hooks",
                                webhook_secrets=["whsec_test_never_rendered"])
    harness = await start_harness(settings)
    try:
        yield harness
    finally:
        await harness.api.aclose()
        await harness.runtime.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def sign_in(api: httpx.AsyncClient, name: str = "ops", password: str = PASSWORD
                  ) -> httpx.Response:
    page = await api.get("/dashboard/login")
    return await api.post("/dashboard/login",
                          data={"csrf": csrf_of(page.text), "name": name, "password": password})


async def paid_order(gw: Harness, reference: str = "shop-1") -> dict[str, Any]:
    order = await gw.create_order(merchant_reference=reference)
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    return order


PAGES = ["/dashboard/", "/dashboard/orders", "/dashboard/events", "/dashboard/sandbox",
         "/dashboard/orders/ord_x"]


async def test_pages_need_a_session_and_actions_are_refused_without_one(gw: Harness) -> None:
    order = await paid_order(gw)
    for path in PAGES:
        r = await gw.api.get(path)
        assert (r.status_code, r.headers["location"]) == (303, "/dashboard/login"), path
    before = await gw.row_counts()
    for path in (f"/dashboard/orders/{order['id']}/refund/confirm",
                 f"/dashboard/orders/{order['id']}/close", "/dashboard/events/evt_x/redeliver",
                 "/dashboard/sandbox/orders", "/dashboard/logout"):
        r = await gw.api.post(path, data={"amount": "1.00", "idempotency_key": "k"})
        assert r.status_code == 403, path
    assert await gw.row_counts() == before


async def test_configured_user_signs_in_and_every_page_renders(gw: Harness) -> None:
    order = await paid_order(gw)
    r = await sign_in(gw.api)
    assert (r.status_code, r.headers["location"]) == (303, "/dashboard/")
    for path in [*PAGES[:-1], f"/dashboard/orders/{order['id']}",
                 f"/dashboard/orders?q={order['merchant_reference']}&status=paid&channel=wechat"
                 "&provider=latipay&from=2000-01-01&to=2999-12-31", "/dashboard/events?state=parked"]:
        r = await gw.api.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "Sign out" in r.text
    assert (await gw.api.get("/dashboard/orders/ord_nosuch")).status_code == 404


async def test_a_wrong_password_waits_and_the_wait_grows(gw: Harness,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(web.asyncio, "sleep", no_sleep)
    for name, password in [("ops", "wrong"), ("ops", "wrong again"), ("nobody", PASSWORD),
                           ("ops", API_KEY + "x")]:
        r = await sign_in(gw.api, name, password)
        assert r.status_code == 401 and "Wrong name or password" in r.text
        assert COOKIE not in r.cookies or not (await gw.api.get("/dashboard/")).is_success
    # Per name and per address: the fourth failure from this address waits 8x the base.
    assert waits == [0.5, 1.0, 2.0, 4.0]
    assert (await sign_in(gw.api)).status_code == 303  # the right password still works


def test_the_wait_is_bounded_in_time_and_memory() -> None:
    throttle = SigninThrottle(1.0)
    waits = [throttle.failed("ops", "10.0.0.1") for _ in range(8)]
    assert waits == [1, 2, 4, 8, 16, 16, 16, 16]
    for i in range(SigninThrottle.MAX_KEYS + 50):
        throttle.failed(f"user{i}", "10.0.0.2")
    assert len(throttle._failures) <= SigninThrottle.MAX_KEYS
    throttle.succeeded("ops")
    assert throttle.failed("ops", "10.0.0.3") == 1  # a success forgets the name's failures


async def test_sandbox_api_key_signs_in(gw: Harness) -> None:
    r = await sign_in(gw.api, "", API_KEY)
    assert r.status_code == 303
    assert "merchant" in (await gw.api.get("/dashboard/")).text


async def test_forms_without_their_csrf_token_change_nothing(gw: Harness) -> None:
    order = await paid_order(gw)
    await sign_in(gw.api)
    page = await gw.api.get(f"/dashboard/orders/{order['id']}")
    token = csrf_of(page.text)
    forms = re.findall(r'<form[^>]* method="post" action="([^"]+)"', page.text)
    assert f"/dashboard/orders/{order['id']}/refund" in forms and "/dashboard/logout" in forms
    # Every form on the page carries the token.
    assert page.text.count('name="csrf"') == len(forms) == page.text.count("<form")
    before = await gw.row_counts()
    confirm = f"/dashboard/orders/{order['id']}/refund/confirm"
    for data in ({"idempotency_key": "k1", "amount": "1.00"},
                 {"idempotency_key": "k1", "amount": "1.00", "csrf": "not-the-token"},
                 {"idempotency_key": "k1", "amount": "1.00", "csrf": ""}):
        r = await gw.api.post(confirm, data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert await gw.row_counts() == before
    # The sign-in form too: no token, no sign-in (and no password check).
    async with httpx.AsyncClient(transport=gw.network, base_url=str(gw.api.base_url)) as other:
        r = await other.post("/dashboard/login", data={"name": "ops", "password": PASSWORD})
        assert r.status_code == 403
        assert (await other.get("/dashboard/")).status_code == 303
    # With the token, the same refund goes through: twice with one key is one refund.
    for _ in range(2):
        r = await gw.api.post(confirm, data={"idempotency_key": "k1", "amount": "1.00",
                                             "csrf": token})
        assert r.status_code == 303
    after = await gw.get_order(order["id"])
    assert [x["amount"] for x in after["refunds"]] == ["1.00"]


async def test_refund_amounts_use_the_currency_exponent(gw: Harness) -> None:
    order = await paid_order(gw)
    await sign_in(gw.api)
    token = csrf_of((await gw.api.get("/dashboard/")).text)
    path = f"/dashboard/orders/{order['id']}/refund"
    for bad in ("1.005", "-1", "12.31", "0", "1e2"):
        r = await gw.api.post(path, data={"csrf": token, "amount": bad})
        assert r.status_code == 422, bad
    r = await gw.api.post(path, data={"csrf": token, "amount": "12.3"})
    assert r.status_code == 200 and "Yes, refund 12.3 NZD" in r.text
    assert (await gw.get_order(order["id"]))["refunds"] == []  # only a confirmation so far


async def test_security_headers_and_cookie(gw: Harness) -> None:
    r = await gw.api.get("/dashboard/login")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "style-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    cookie = SimpleCookie(r.headers["set-cookie"])[COOKIE]
    assert cookie["httponly"] and cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/dashboard"
    assert not cookie["secure"]  # sandbox over plain HTTP
    # No inline script or style anywhere: everything comes from /dashboard/static.
    await sign_in(gw.api)
    html = (await gw.api.get("/dashboard/")).text
    assert "<style" not in html and " style=" not in html and " on" not in re.sub(
        r"<(svg|text|option)[^>]*>", "", html).replace(" one", "")
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/dashboard/static/dashboard.js" defer>']
    static = await gw.api.get("/dashboard/static/dashboard.js")
    assert static.status_code == 200 and static.headers["x-content-type-options"] == "nosniff"


async def test_the_cookie_is_secure_outside_the_sandbox(tmp_path: Path) -> None:
    settings = harness_settings(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}", mode="live",
                                dashboard={"users": {"ops": HASH}})
    harness = await start_harness(settings)
    try:
        r = await harness.api.get("/dashboard/login")
        assert SimpleCookie(r.headers["set-cookie"])[COOKIE]["secure"]
        assert "Sandbox mode" not in r.text
        # Outside the sandbox the API key is not a dashboard password.
        page_csrf = csrf_of(r.text)
        harness.api.cookies.set(COOKIE, r.cookies[COOKIE], domain="minigate.test")
        r = await harness.api.post("/dashboard/login", data={
            "csrf": page_csrf, "name": "", "password": API_KEY})
        assert r.status_code in (401, 403)
    finally:
        await harness.api.aclose()
        await harness.runtime.stop()


async def test_no_secret_is_ever_rendered(gw: Harness) -> None:
    order = await gw.create_order(merchant_reference="secret-check")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    await sign_in(gw.api)
    pages = [await gw.api.get(p) for p in (
        "/dashboard/", "/dashboard/orders", "/dashboard/events", "/dashboard/sandbox",
        f"/dashboard/orders/{order['id']}")]
    secrets = [order["client_token"], API_KEY, "whsec_test_never_rendered", HASH, PASSWORD]
    settings = gw.runtime.settings
    secrets += [settings.latipay.api_key.get_secret_value()]
    for r in pages:
        assert r.status_code == 200
        for secret in secrets:
            assert secret not in r.text, (r.url, secret[:12])


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(gw: Harness) -> None:
    await sign_in(gw.api)
    stolen = gw.api.cookies[COOKIE]
    token = csrf_of((await gw.api.get("/dashboard/")).text)
    r = await gw.api.post("/dashboard/logout", data={"csrf": token})
    assert (r.status_code, r.headers["location"]) == (303, "/dashboard/login?notice=signedout")
    gw.api.cookies.set(COOKIE, stolen, domain="minigate.test", path="/dashboard")
    assert (await gw.api.get("/dashboard/")).status_code == 303
    # A tampered cookie is no session either.
    gw.api.cookies.set(COOKIE, stolen[:-2] + "xx", domain="minigate.test", path="/dashboard")
    assert (await gw.api.get("/dashboard/")).status_code == 303


async def test_orders_search_and_cursor_pagination(gw: Harness) -> None:
    ids = [(await gw.create_order(merchant_reference=f"page-{i:02d}"))["id"] for i in range(27)]
    paid = await paid_order(gw, "found-by-number")
    number = (await gw.get_order(paid["id"]))["payments"][0]["provider_order_no"]
    await sign_in(gw.api)
    first = await gw.api.get("/dashboard/orders?status=created")
    shown = re.findall(r'href="/dashboard/orders/(ord_\w+)"', first.text)
    assert len(shown) == 25 and shown[0] == ids[-1]
    more = re.search(r'href="/dashboard/orders(\?[^"]+)" rel="next"', first.text)
    assert more
    second = await gw.api.get("/dashboard/orders" + more.group(1).replace("&amp;", "&"))
    rest = re.findall(r'href="/dashboard/orders/(ord_\w+)"', second.text)
    assert set(shown) | set(rest) == set(ids) and not set(shown) & set(rest)
    assert 'rel="next"' not in second.text
    for q in (number, "found-by-number", paid["id"]):
        r = await gw.api.get("/dashboard/orders", params={"q": q})
        assert re.findall(r'href="/dashboard/orders/(ord_\w+)"', r.text) == [paid["id"]], q
    r = await gw.api.get("/dashboard/orders", params={"channel": "alipay"})
    assert "No order matches" in r.text
    r = await gw.api.get("/dashboard/orders", params={"from": "yesterday"})
    assert "is not a date" in r.text


async def test_close_and_pay_as_the_shopper_go_through_the_service(gw: Harness) -> None:
    await sign_in(gw.api)
    token = csrf_of((await gw.api.get("/dashboard/")).text)
    unpaid = await gw.create_order(merchant_reference="to-close")
    r = await gw.api.post(f"/dashboard/orders/{unpaid['id']}/close", data={"csrf": token})
    assert r.status_code == 303
    closed = await gw.get_order(unpaid["id"])
    assert closed["status"] == "closed"
    assert [e["type"] for e in closed["timeline"]].count("order.closed") == 1
    r = await gw.api.post(f"/dashboard/orders/{unpaid['id']}/close", data={"csrf": token})
    assert r.status_code == 303  # closing a closed order is a no-op, as in the API

    # An order made by the API: the dashboard holds only its token's hash, so it asks.
    order = await gw.create_order(merchant_reference="pay-me")
    page = await gw.api.get(f"/dashboard/orders/{order['id']}")
    assert 'name="client_token"' in page.text
    r = await gw.api.post(f"/dashboard/orders/{order['id']}/pay",
                          data={"csrf": token, "client_token": "ct_wrong"})
    assert r.status_code == 401 and "client_token does not match" in r.text
    assert (await gw.get_order(order["id"]))["payments"] == []
    r = await gw.api.post(f"/dashboard/orders/{order['id']}/pay",
                          data={"csrf": token, "client_token": order["client_token"]})
    assert r.status_code == 303
    await gw.wait_status(order["id"], "paid")


async def test_overview_shows_flags_waiting_payments_and_undelivered_webhooks(gw: Harness
                                                                             ) -> None:
    from sqlalchemy import update

    from minigate.domain.events import EventType
    from minigate.store import repo
    from minigate.store.models import Order

    flagged = await paid_order(gw, "flag-me")
    async with gw.ctx.sessions() as session, session.begin():  # as _flag leaves it
        await session.execute(update(Order).where(Order.id == flagged["id"]).values(flagged=1))
        repo.add_event(session, EventType.NOTIFICATION_MISMATCH, gw.ctx.clock.now(),
                       order_id=flagged["id"], data={"problem": "amount 1.00 != 12.30",
                                                     "source": "notification"},
                       webhooks=False)
    waiting = await gw.create_order(merchant_reference="still-waiting")
    await gw.pay(waiting)
    await sign_in(gw.api)
    html = (await gw.api.get("/dashboard/")).text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "flag-me pending" not in text and "amount 1.00 != 12.30" in text
    assert re.search(r"still-waiting pending latipay 12\.30 NZD \d+ s", text)
    # Webhooks are on (shop.test does not answer): paid events wait in the queue.
    assert re.search(r"\d+ retrying, 0 parked, \d+ waiting in the queue", text)
    assert "latipay wechat 1 12.30 NZD" in text  # paid today, per provider and channel
    order_page = (await gw.api.get(f"/dashboard/orders/{flagged['id']}")).text
    assert "flagged" in order_page and "does not match the order" in order_page


async def test_the_dashboard_can_be_switched_off(tmp_path: Path) -> None:
    settings = harness_settings(f"sqlite+aiosqlite:///{tmp_path / 'off.db'}",
                                dashboard={"enabled": False})
    harness = await start_harness(settings)
    try:
        for path in ("/dashboard/", "/dashboard/login", "/dashboard/static/dashboard.js"):
            assert (await harness.api.get(path)).status_code == 404, path
    finally:
        await harness.api.aclose()
        await harness.runtime.stop()
