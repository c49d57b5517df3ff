"""Screenshots of every dashboard page for docs/dashboard.md, taken with Debian's Chromium
against a real ``minigate serve`` in sandbox mode filled with sandbox payments.

    .venv/bin/python -m tests.dashboard.docs_screenshots [OUTPUT_DIR]   (default docs/img)
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from minigate.dashboard.security import hash_password
from tests.dashboard.server import launch, running_server

USER, PASSWORD = "support", "sandbox screenshots only"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    users = json.dumps({USER: hash_password(PASSWORD)})
    with tempfile.TemporaryDirectory() as tmp, \
            running_server(Path(tmp), MINIGATE_DASHBOARD__USERS=users) as server, \
            sync_playwright() as playwright:
        server.sink.status = 204
        server.paid_order("cafe-2041", "12.30")
        server.paid_order("cafe-2042", "88.00", "HKD", provider="qfpay")
        server.paid_order("cafe-2043", "56.80", "HKD", provider="cbtis")
        refunded = server.paid_order("cafe-2044", "88.80", "CNY", provider="wechatpay")
        server.http.post(f"/v1/orders/{refunded['id']}/refunds", headers=server.auth,
                         json={"amount": "20.00", "reason": "one cup spilt"})
        server.sink.status = 503  # the shop's endpoint is down for the next ones
        server.paid_order("cafe-2045", "25.00")
        server.pending_order("cafe-2046")
        time.sleep(1)  # the first delivery attempts land

        browser = launch(playwright)
        page = browser.new_page(base_url=server.base, viewport={"width": 1200, "height": 800})

        def shot(name: str) -> None:
            page.screenshot(path=str(out / f"dashboard-{name}.png"), full_page=True)

        page.goto("/dashboard/login")
        shot("signin")
        page.get_by_label("Name").fill(USER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name=re.compile("^Overview")).wait_for()
        shot("overview")
        page.goto("/dashboard/orders")
        shot("orders")
        page.goto(f"/dashboard/orders/{refunded['id']}")
        shot("order")
        page.get_by_label(re.compile("^Refund amount")).fill("10.00")
        page.get_by_role("button", name="Refund…").click()
        shot("refund-confirm")
        page.goto("/dashboard/events")
        shot("events")
        page.goto("/dashboard/sandbox")
        shot("sandbox")
        phone = browser.new_page(base_url=server.base, viewport={"width": 390, "height": 844},
                                 is_mobile=True)
        phone.context.add_cookies(page.context.cookies())
        phone.goto("/dashboard/")
        phone.screenshot(path=str(out / "dashboard-phone.png"), full_page=False)
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img"))
