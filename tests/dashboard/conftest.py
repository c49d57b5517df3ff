"""Fixtures of the dashboard's browser tests: one real server and one Chromium per module."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.server import Server, browser_missing_reason, launch, running_server

SUPPORT_USER, SUPPORT_PASSWORD = "support", "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from minigate.dashboard.security import hash_password

    users = json.dumps({SUPPORT_USER: hash_password(SUPPORT_PASSWORD)})
    with running_server(tmp_path_factory.mktemp("dashboard"),
                        MINIGATE_DASHBOARD__USERS=users) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    reason = browser_missing_reason()
    if reason is not None:
        if os.environ.get("MINIGATE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MINIGATE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(f"SKIPPING browser test: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any, server: Server) -> Iterator[Any]:
    context = chromium.new_context(base_url=server.base, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    problems: list[str] = []  # CSP violations and script errors show up here
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert [p for p in problems if "status of 403" not in p] == []


def shot(page: Any, name: str) -> Path:
    from tests.dashboard.server import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
