"""The dashboard in a real Chromium against a real ``minigate serve`` (sandbox mode)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.dashboard.conftest import SUPPORT_PASSWORD, SUPPORT_USER, shot
from tests.dashboard.server import Server

PHONE_WIDTH = 390


def sign_in(page: Any) -> None:
    page.goto("/dashboard/")
    assert page.url.endswith("/dashboard/login")  # not signed in: sent to the sign-in page
    page.get_by_label("Name").fill(SUPPORT_USER)
    page.get_by_label("Password").fill(SUPPORT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name=re.compile("^Overview")).wait_for()


def until(page: Any, check: Callable[[], bool], timeout: float = 15) -> None:
    """Reload the page until ``check`` holds (background work lands between loads)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting on {page.url}"
        time.sleep(0.2)
        page.reload()


def timeline(page: Any) -> list[str]:
    return [" ".join(t.split()) for t in page.locator("ol.timeline li").all_inner_texts()]


def test_find_an_order_by_reference_refund_part_and_see_the_timeline(
    page: Any, server: Server
) -> None:
    order = server.paid_order("cafe-1001", "12.30")
    sign_in(page)
    shot(page, "overview")
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Orders").click()
    page.get_by_label("Order id, merchant reference or provider number").fill("cafe-1001")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.orders tbody tr")
    assert rows.count() == 1
    shot(page, "orders")
    rows.get_by_role("link", name="cafe-1001").click()
    assert page.get_by_role("heading", level=1).inner_text().split()[-1] == "paid"
    before = timeline(page)
    assert any("Paid" in item for item in before)
    assert not any("Refund" in item for item in before)

    page.get_by_label(re.compile("^Refund amount")).fill("4.50")
    page.get_by_label("Reason (optional)").fill("one pastry was missing")
    page.get_by_role("button", name="Refund…").click()
    # Nothing is refunded before the confirmation.
    assert server.order(order["id"])["refunds"] == []
    page.get_by_role("button", name="Yes, refund 4.50 NZD").click()
    page.get_by_role("status").wait_for()
    until(page, lambda: any("Refund succeeded" in item for item in timeline(page)))
    after = timeline(page)
    assert len(after) > len(before)
    assert any("Refund requested" in item and "4.50 NZD" in item for item in after)
    assert "partially_refunded" in page.get_by_role("heading", level=1).inner_text()
    shot(page, "order")
    api = server.order(order["id"])
    assert api["amount_refunded"] == "4.50" and api["status"] == "partially_refunded"
    assert [r["reason"] for r in api["refunds"]] == ["one pastry was missing"]


def test_redeliver_an_event_that_the_shop_refused(page: Any, server: Server) -> None:
    server.sink.status = 500
    order = server.paid_order("cafe-1002", "9.00")
    deadline = time.monotonic() + 15
    while True:  # the runner tries once at once, and is refused
        events = server.http.get("/v1/events", headers=server.auth).json()["data"]
        mine = [e for e in events if e["order_id"] == order["id"] and e["type"] == "order.paid"]
        if mine and mine[0]["delivery"]["attempts"] >= 1:
            break
        assert time.monotonic() < deadline, mine
        time.sleep(0.1)
    event_id = mine[0]["id"]

    sign_in(page)
    page.goto("/dashboard/events")
    page.get_by_role("navigation", name="Delivery state").get_by_role("link", name="retrying").click()
    row = page.locator("table.events tbody tr", has_text=event_id)
    assert "HTTP 500" in row.inner_text()
    shot(page, "events")

    server.sink.status = 204
    row.get_by_role("button", name=re.compile("^Redeliver")).click()
    assert "queued for delivery again" in page.get_by_role("status").inner_text()
    page.goto("/dashboard/events?state=delivered")
    until(page, lambda: page.locator("table.events tbody tr", has_text=event_id).count() == 1)
    assert "HTTP 204" in page.locator("table.events tbody tr", has_text=event_id).inner_text()

    page.goto(f"/dashboard/orders/{order['id']}")
    items = timeline(page)
    assert any("Webhook order.paid not delivered" in i and "HTTP 500" in i for i in items)
    assert any("Webhook order.paid delivered" in i and "HTTP 204" in i for i in items)


def test_a_form_without_its_csrf_token_is_refused(page: Any, server: Server) -> None:
    order = server.paid_order("cafe-1003", "7.00")
    sign_in(page)
    page.goto(f"/dashboard/orders/{order['id']}")
    page.locator("form.refund input[name=csrf]").evaluate("input => input.remove()")
    page.get_by_label(re.compile("^Refund amount")).fill("1.00")
    page.get_by_role("button", name="Refund…").click()
    assert "CSRF" in page.get_by_role("alert").inner_text()
    # A forged confirmation straight to step two, with the session cookie but no token:
    response = page.request.post(f"/dashboard/orders/{order['id']}/refund/confirm",
                                 form={"idempotency_key": "forged", "amount": "1.00"})
    assert response.status == 403
    api = server.order(order["id"])
    assert api["refunds"] == [] and api["status"] == "paid"


def test_pay_as_the_sandbox_shopper_then_sign_out(page: Any, server: Server) -> None:
    sign_in(page)
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Sandbox").click()
    page.get_by_label("Merchant reference").fill("cafe-1004")
    page.get_by_label("Amount").fill("8.80")
    page.get_by_role("button", name="Create test order").click()
    assert "created" in page.get_by_role("heading", level=1).inner_text()
    shot(page, "sandbox-order")
    page.get_by_role("button", name=re.compile("Pay as the shopper")).click()
    until(page, lambda: "paid" in page.get_by_role("heading", level=1).inner_text())
    assert any("Notification from latipay" in i and "outcome: paid" in i for i in timeline(page))

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert "signed out" in page.get_by_role("status").inner_text()
    page.goto("/dashboard/orders")
    assert page.url.endswith("/dashboard/login")


def test_phone_sized_screen(chromium: Any, server: Server) -> None:
    context = chromium.new_context(base_url=server.base, viewport={"width": PHONE_WIDTH, "height": 844},
                                   is_mobile=True, has_touch=True)
    try:
        pending = server.pending_order("cafe-1005")
        page = context.new_page()
        sign_in(page)
        assert page.locator("section", has_text="Waiting for the provider").get_by_role(
            "link", name="cafe-1005").count() == 1
        for path in ("/dashboard/", "/dashboard/orders", "/dashboard/events",
                     f"/dashboard/orders/{pending['id']}"):
            page.goto(path)
            # No sideways scrolling of the page, and no box sticking out of it (wide
            # tables scroll inside their own box).
            # (Compared with the phone's width: a mobile browser widens its layout viewport
            # to fit content that sticks out.)
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH, path
            assert page.evaluate("""width => Array.from(document.querySelectorAll(
                '.card, header, form')).filter(el => !el.closest('.scroll'))
                .every(el => el.getBoundingClientRect().right <= width)""", PHONE_WIDTH), path
        page.goto("/dashboard/")
        shot(page, "overview-phone")
    finally:
        context.close()
