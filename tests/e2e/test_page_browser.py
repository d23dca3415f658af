"""The flow viewer and Swagger UI in a real browser: Debian's chromium, driven by Playwright, against a
real server. As a user the page draws that login's flows only; opened with the operator's address, every
login's. Screenshots: tests/support/browser.py (into docs/ with ``FLOW_VIEWER_SCREENSHOTS=docs``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.edge.auth import operator_token
from tests.conftest import new_login
from tests.support.auth import PASSWORD, bearer
from tests.support.browser import Page, chromium_tab, expect, keep_screenshot, run_step
from tests.support.server import Server

SEED_PARTICIPANTS = (
    "Client",
    "Person-service",
    "Brocker-service",
    "Billing-service",
    "Order-service",
    "Notification-service",
)

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "data") as s:
        yield s


@pytest.fixture
def browser_page(server: Server) -> Iterator[Page]:
    """A fresh chromium tab, nothing loaded yet."""
    with chromium_tab() as page:
        yield page


@pytest.fixture
def page(server: Server, browser_page: Page) -> Page:
    browser_page.goto(server.base_url + "/")
    return browser_page


def someone_elses_order(server: Server) -> str:
    """Another login, registered, funded and with a paid order, over HTTP: its login."""
    login = new_login("other")
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        body = {"login": login, "email": f"{login}@example.com", "password": PASSWORD}
        assert c.post("/person/register", json=body).status_code == 200
        r = c.post("/person/login", json={"login": login, "password": PASSWORD})
        auth = bearer(r.json()["accessToken"])
        for _ in range(200):  # billing opens the account when person.registered.v1 reaches it
            if c.get("/account/", params={"login": login}, headers=auth).status_code == 200:
                break
        deposit = {"login": login, "operation": "deposit", "sum": 10}
        assert c.put("/account/operation", json=deposit, headers=auth).status_code == 200
        order = c.post("/order/createOrder", json={"login": login, "price": 1}, headers=auth)
        assert order.status_code == 200, order.text
    return login


def test_the_page_walks_the_seed_and_draws_each_flow(server: Server, page: Page, tmp_path: Path) -> None:
    other = someone_elses_order(server)
    expect(page.locator("#login")).to_have_text(re.compile(r"^student-[0-9a-f]{12}$"))
    diagram = page.locator("#diagram svg")

    run_step(page, "register", "200")
    # no token yet: neither the account nor the flow is the page's to read
    expect(page.locator("#diagram")).to_contain_text("Log in")
    expect(page.locator("#balance")).to_have_text("—")
    expect(page.locator("#recent li")).to_have_count(0)

    run_step(page, "login", "200 ")
    expect(page.locator('#steps li[data-step="login"] .result')).to_contain_text("Bearer token for 3600 s")
    expect(page.locator("#viewer-mode")).to_contain_text("Your flows only")
    expect(diagram).to_contain_text("POST /person/login")
    # billing opened the account when person.registered.v1 reached it: the page reads it with the token
    expect(page.locator("#balance")).to_have_text("0.00")
    # the register step's flow is this login's: drawn now that the page has its token
    page.locator('#steps li[data-step="register"] .result').click()
    expect(diagram).to_contain_text("POST /person/register")
    expect(diagram).to_contain_text("billing.account_created.v1")

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

    # the recent flows are this login's, never the other's
    recent = page.locator("#recent li")
    expect(recent.first).to_contain_text(page.locator("#login").inner_text())
    assert all(other not in text for text in recent.all_inner_texts())
    assert all(page.locator("#login").inner_text() in text for text in recent.all_inner_texts())

    # back to the paid order's flow, for the picture
    page.locator('#steps li[data-step="order"] .result').click()
    expect(diagram).to_contain_text("billing.payment_succeeded.v1")
    expect(page.locator("#flow-outcome")).to_contain_text("order · ok")
    page.get_by_text("As sequencediagram.org text").click()
    expect(page.locator("#seq-text")).to_contain_text("Client->Order-service: POST /order/createOrder")
    expect(page.locator("#seq-text")).to_contain_text("Order-service-->Client: 200")
    keep_screenshot(page, tmp_path, "flow-viewer.png")


def test_the_operators_address_shows_every_logins_flows_and_leaves_no_token_behind(
    server: Server, browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    token = operator_token(Settings(data_dir=server.data_dir))
    other = someone_elses_order(server)
    page.goto(f"{server.base_url}/?operator={token}")
    expect(page.locator("#viewer-mode")).to_have_text("Operator: every login's flows.")
    # out of the address bar at once, kept for this tab only
    assert page.url == server.base_url + "/"
    assert page.evaluate("sessionStorage.getItem('eventcollab.operator')") == token

    others = page.locator("#recent li", has_text=other)
    expect(others.first).to_be_visible()
    page.locator("#recent li button", has_text=f"order · {other}").click()
    diagram = page.locator("#diagram svg")
    expect(diagram).to_contain_text("POST /order/createOrder")
    expect(diagram).to_contain_text("billing.payment_succeeded.v1")
    expect(page.locator("#flow-outcome")).to_contain_text("order · ok")
    expect(page.locator("#flow-outcome")).to_contain_text(other)

    # the page's own steps still run as its login; the operator sees those flows too
    run_step(page, "register", "200")
    run_step(page, "login", "200 ")
    expect(page.locator("#recent li", has_text=page.locator("#login").inner_text()).first).to_be_visible()
    expect(page.locator("#recent li", has_text=other).first).to_be_visible()
    page.locator("#recent li button", has_text=f"order · {other}").click()
    expect(diagram).to_contain_text("billing.payment_succeeded.v1")

    # a reload keeps the view (sessionStorage), and no link, address or markup carries the token
    page.reload()
    expect(page.locator("#viewer-mode")).to_have_text("Operator: every login's flows.")
    assert token not in page.url and token not in page.content()
    hrefs = page.eval_on_selector_all("[href], [src]", "els => els.map(e => e.href || e.src)")
    assert hrefs and not any(token in h for h in hrefs)
    expect(page.locator("#recent li", has_text=other).first).to_be_visible()
    page.locator("#recent li button", has_text=f"order · {other}").click()
    expect(diagram).to_contain_text("POST /order/createOrder")
    keep_screenshot(page, tmp_path, "flow-viewer-operator.png")

    page.get_by_role("button", name="Leave the operator view").click()
    expect(page.locator("#viewer-mode")).to_have_text("Log in to see your flows.")
    assert page.evaluate("sessionStorage.getItem('eventcollab.operator')") is None
    expect(page.locator("#recent li")).to_have_count(0)


def test_swagger_ui_authorize_sends_the_token(server: Server, browser_page: Page) -> None:
    page = browser_page
    login = new_login("swagger")
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        body = {"login": login, "email": f"{login}@example.com", "password": PASSWORD}
        assert c.post("/person/register", json=body).status_code == 200
        token = c.post("/person/login", json={"login": login, "password": PASSWORD}).json()["accessToken"]
    page.goto(server.base_url + "/docs")
    page.locator("button.authorize").first.click()
    modal = page.locator(".modal-ux")
    expect(modal).to_contain_text("userToken")
    expect(modal).to_contain_text("operatorToken")
    user = modal.locator(".auth-container", has_text="userToken")
    user.locator("input").fill(token)
    user.locator("button.authorize").click()
    expect(user).to_contain_text("Authorized")
    operator = modal.locator(".auth-container", has_text="operatorToken")
    operator.locator("input").fill(operator_token(Settings(data_dir=server.data_dir)))
    operator.locator("button.authorize").click()
    expect(operator).to_contain_text("Authorized")
    modal.locator("button.btn-done").first.click()

    for block_id, fill in (
        ("#operations-person-get_person_person_persons__login__get", login),
        ("#operations-admin-outbox_admin_outbox_get", None),
    ):
        block = page.locator(block_id)
        block.locator(".opblock-summary").click()
        block.get_by_role("button", name="Try it out").click()
        if fill is not None:
            block.locator("input[placeholder='login']").fill(fill)
        block.get_by_role("button", name="Execute").click()
        status = block.locator(".live-responses-table .response .response-col_status")
        expect(status).to_have_text("200")
        expect(block.locator(".curl-command")).to_contain_text("Authorization: Bearer")
