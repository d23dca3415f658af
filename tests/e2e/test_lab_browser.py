"""The flow viewer as a lab, in a real browser against a real server: the operator switches chaos on from
the page, pauses billing, watches an order wait (202) and billing's backlog grow, resumes, and sees the
order settle once although every event was delivered twice; then the seed's wording and the whole
scenario as one diagram, its labels readable at 1400x900. Screenshots: docs/lab-*.png, written as
tests/support/browser.py says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.edge.auth import operator_token
from tests.support.auth import bearer
from tests.support.browser import Page, chromium_tab, expect, keep_screenshot, run_step
from tests.support.server import Server

pytestmark = pytest.mark.slow

# createOrder answers 202 after this many seconds without billing's answer: short, billing is paused
ORDER_REPLY_TIMEOUT = "1"
# the diagram's labels at 1400x900: a text element at least this tall on screen, in CSS pixels
LABEL_PX = 11
# ... and its font size times the picture's scale at least this
FONT_PX = 12

# every label's computed font size times the SVG's scale, and its height on screen
MEASURE_LABELS = """() => {
  const svg = document.querySelector("#diagram svg");
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll("text.messageText")].map((t) => ({
    text: t.textContent,
    font: parseFloat(getComputedStyle(t).fontSize) * scale,
    height: t.getBoundingClientRect().height,
  }));
}"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "data", env={"ORDER_REPLY_TIMEOUT": ORDER_REPLY_TIMEOUT}) as s:
        yield s


@pytest.fixture
def operator(server: Server) -> dict[str, str]:
    return bearer(operator_token(Settings(data_dir=server.data_dir)))


@pytest.fixture
def page(server: Server, operator: dict[str, str]) -> Iterator[Page]:
    """The page in the operator's view (the lab panel is the operator's only)."""
    with chromium_tab(1400, 900) as tab:
        token = operator["Authorization"].removeprefix("Bearer ")
        tab.goto(f"{server.base_url}/?operator={token}")
        expect(tab.locator("#viewer-mode")).to_have_text("Operator: every login's flows.")
        yield tab


def admin(server: Server, operator: dict[str, str], path: str) -> Any:
    r = httpx.get(server.base_url + path, headers=operator, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def assert_labels_readable(page: Page) -> None:
    labels = page.evaluate(MEASURE_LABELS)
    assert labels, "no message labels in the diagram"
    small = [lb for lb in labels if lb["font"] < FONT_PX or lb["height"] < LABEL_PX]
    assert not small, f"labels smaller than {FONT_PX} px at 1400x900: {small[:3]}"


def test_a_paused_billing_holds_the_order_and_resuming_settles_it_once_under_duplicates(
    server: Server, operator: dict[str, str], page: Page, tmp_path: Path
) -> None:
    lab = page.locator("#lab")
    expect(lab).to_be_visible()
    expect(page.locator("#lab-chaos-state")).to_have_text("off")
    billing = page.locator('#modules tr[data-module="billing"]')
    expect(billing.locator(".state")).to_have_text("running")

    # chaos on from the form: every delivery twice, seeded
    form = page.locator("#chaos-form")
    form.get_by_label("seed").fill("7")
    form.get_by_label("duplicate").fill("1")
    form.get_by_role("button", name="Apply").click()
    expect(page.locator("#lab-chaos-state")).to_contain_text("duplicate 1")
    chaos = admin(server, operator, "/admin/chaos")
    assert chaos["enabled"] is True
    assert chaos["chaos"]["seed"] == 7 and chaos["chaos"]["duplicate"] == 1
    # a value the server refuses: its problem's detail next to the form, and nothing changed
    form.get_by_label("delay").fill("soon")
    form.get_by_role("button", name="Apply").click()
    expect(page.locator("#chaos-error")).to_contain_text("422")
    assert admin(server, operator, "/admin/chaos")["chaos"] == chaos["chaos"]
    form.get_by_label("delay").fill("")
    form.get_by_role("button", name="Apply").click()
    expect(page.locator("#chaos-error")).to_have_text("")

    run_step(page, "register", "200")
    run_step(page, "login", "200 ")
    expect(page.locator("#balance")).to_have_text("0.00")
    run_step(page, "deposit", "balance 1000.00")

    # billing paused: the order waits for it, createOrder answers 202, the payment request queues
    billing.get_by_role("button", name="Pause").click()
    expect(billing.locator(".state")).to_have_text("paused")
    run_step(page, "order", "202")
    order = page.locator('#steps li[data-step="order"] .result')
    expect(order).to_contain_text("pending")
    expect(page.locator("#orders li")).to_have_text(["300.00 · pending"])
    expect(billing.locator(".backlog")).to_have_text(re.compile(r"^[1-9][0-9]*$"))
    assert admin(server, operator, "/admin/modules")["modules"]["billing"]["backlog"] >= 1
    expect(page.locator("#diagram svg")).to_contain_text("POST /order/createOrder")
    keep_screenshot(page, tmp_path, "lab-paused.png")

    # resumed: the backlog drains, the order settles, once, though every event came twice
    billing.get_by_role("button", name="Resume").click()
    expect(billing.locator(".state")).to_have_text("running")
    expect(page.locator("#orders li")).to_have_text(["300.00 · paid"])
    expect(order).to_contain_text("then paid")
    expect(billing.locator(".backlog")).to_have_text("0")
    expect(page.locator("#balance")).to_have_text("700.00")
    expect(page.locator("#notices li")).to_have_count(2)  # the account opened, the order paid
    assert admin(server, operator, "/admin/chaos")["injected"]["duplicate"] > 0
    # the order's flow, redrawn live as it settled after its 202
    diagram = page.locator("#diagram svg")
    expect(diagram).to_contain_text("billing.payment_succeeded.v1")
    expect(page.locator("#lab-injected")).to_contain_text(re.compile(r"duplicate [1-9]"))
    assert_labels_readable(page)
    keep_screenshot(page, tmp_path, "lab-chaos.png")
    run_step(page, "balance", "balance 700.00")

    # the seed's wording for the same flow
    page.locator('#steps li[data-step="order"] .result').click()
    page.get_by_label("seed wording").check()
    expect(diagram).to_contain_text("Списание денежных средств")
    expect(page.locator("#seq-text")).to_contain_text("Списание денежных средств")

    # every step so far as one diagram: labels of the sign-up, the deposit and the order
    page.get_by_role("button", name="Whole scenario").click()
    expect(page.locator("#flow-id")).to_contain_text("whole scenario: 5 steps")
    expect(diagram).to_contain_text("Создание аккаунта")
    expect(diagram).to_contain_text("Пополнение счета")
    expect(diagram).to_contain_text("Списание денежных средств")
    expect(page.locator("#mermaid-text")).to_contain_text("sequenceDiagram")
    expect(page.locator("#seq-text")).to_contain_text("Создание аккаунта")
    assert_labels_readable(page)
    page.get_by_label("event names").check()
    expect(diagram).to_contain_text("person.registered.v1")
    expect(diagram).to_contain_text("billing.payment_succeeded.v1")
    page.get_by_label("seed wording").check()
    expect(diagram).to_contain_text("Создание аккаунта")
    keep_screenshot(page, tmp_path, "lab-scenario.png")

    page.get_by_role("button", name="Chaos off").click()
    expect(page.locator("#lab-chaos-state")).to_have_text("off")
    assert admin(server, operator, "/admin/chaos")["enabled"] is False
