"""The flow viewer in a real browser: Debian's chromium, driven by Playwright, against a real server.

Its last picture is the docs' screenshot: the test writes it under its tmp_path, and over
docs/flow-viewer.png only when asked (``FLOW_VIEWER_SCREENSHOT=docs/flow-viewer.png``), so that a test
run leaves the work tree as it found it."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_TO = os.environ.get("FLOW_VIEWER_SCREENSHOT")
SEED_PARTICIPANTS = (
    "Client",
    "Person-service",
    "Brocker-service",
    "Billing-service",
    "Order-service",
    "Notification-service",
)

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:
    pytest.skip("Playwright for Python is not installed: pip install playwright", allow_module_level=True)
if not CHROMIUM.exists():
    pytest.skip(f"no browser at {CHROMIUM}: apt-get install -y chromium", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.browser]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "data") as s:
        yield s


@pytest.fixture
def page(server: Server) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(10_000)
            page.goto(server.base_url + "/")
            yield page
        finally:
            browser.close()


def run_step(page: Page, step: str, shows: str) -> None:
    item = page.locator(f'#steps li[data-step="{step}"]')
    item.get_by_role("button").click()
    expect(item.locator(".result")).to_contain_text(shows)


def test_the_page_walks_the_seed_and_draws_each_flow(page: Page, tmp_path: Path) -> None:
    expect(page.locator("#login")).to_have_text(re.compile(r"^student-[0-9a-f]{12}$"))
    diagram = page.locator("#diagram svg")

    run_step(page, "register", "200")
    expect(diagram).to_contain_text("POST /person/register")
    expect(diagram).to_contain_text("billing.account_created.v1")
    # no token yet: the account is not the page's to read
    expect(page.locator("#balance")).to_have_text("—")

    run_step(page, "login", "200 ")
    expect(page.locator('#steps li[data-step="login"] .result')).to_contain_text("Bearer token for 3600 s")
    expect(diagram).to_contain_text("POST /person/login")
    # billing opened the account when person.registered.v1 reached it: the page reads it with the token
    expect(page.locator("#balance")).to_have_text("0.00")

    run_step(page, "deposit", "balance 1000.00")
    run_step(page, "order", "paid")
    for name in SEED_PARTICIPANTS:
        expect(diagram).to_contain_text(name)
    for arrow in (
        "POST /order/createOrder",
        "orders.payment_requested.v1",
        "billing.payment_succeeded.v1",
        "billing.notification_requested.v1",
    ):
        expect(diagram).to_contain_text(arrow)

    run_step(page, "balance", "balance 700.00")
    expect(page.locator("#balance")).to_have_text("700.00")
    run_step(page, "notices", "notices")

    run_step(page, "big-order", "rejected (insufficient_funds)")
    expect(diagram).to_contain_text("billing.payment_failed.v1")
    expect(page.locator("#balance")).to_have_text("700.00")
    expect(page.locator("#notices li")).to_have_count(3)
    run_step(page, "notices-again", "3 notices")
    expect(page.locator("#orders li")).to_have_count(2)

    # back to the paid order's flow, for the picture
    page.locator('#steps li[data-step="order"] .result').click()
    expect(diagram).to_contain_text("billing.payment_succeeded.v1")
    expect(page.locator("#flow-outcome")).to_contain_text("order · ok")
    page.get_by_text("As sequencediagram.org text").click()
    expect(page.locator("#seq-text")).to_contain_text("Client->Order-service: POST /order/createOrder")
    expect(page.locator("#seq-text")).to_contain_text("Order-service-->Client: 200")
    screenshot = tmp_path / "flow-viewer.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if SCREENSHOT_TO:
        shutil.copyfile(screenshot, SCREENSHOT_TO)
