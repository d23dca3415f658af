"""The lab: chaos set while running, a module paused and resumed, every state change drawn as a
self-arrow, and the seed's own words for each arrow — all through the ASGI app, in memory."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import new_login
from tests.support.asgi import running
from tests.support.auth import PASSWORD, log_in, operator
from tests.support.poll import until
from tests.support.settings import FAST_RETRY, memory_settings

SEED = Path(__file__).parents[2] / "docs" / "seed-sequence.txt"
# "A->B:label" and "A<-B:label", as the seed writes its arrows
SEED_ARROW = re.compile(r"^([\w-]+)(->|<-)([\w-]+):(.*)$")


@pytest.fixture
async def lab() -> AsyncIterator[httpx.AsyncClient]:
    # a short reply timeout: an order whose payment waits answers 202 quickly
    settings = memory_settings(login_rate_per_address=1_000_000, order_reply_timeout=0.3, **FAST_RETRY)
    async with running(create_app(settings)) as client:
        yield client


def op(client: httpx.AsyncClient) -> dict[str, str]:
    return operator(client.app)  # type: ignore[attr-defined]


def cid(name: str) -> dict[str, str]:
    return {"X-Correlation-ID": name}


async def account(client: httpx.AsyncClient, step: str = "") -> tuple[str, dict[str, str]]:
    """A registered login with its open account and its token; the sign-up's flow is ``step``."""
    login = new_login("lab")
    body = {"login": login, "email": f"{login}@example.com", "password": PASSWORD}
    r = await client.post("/person/register", json=body, headers=cid(step or f"reg-{login}"))
    assert r.status_code == 200, r.text
    auth = await log_in(client, login)

    async def opened() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(opened)
    return login, auth


async def deposit(client: httpx.AsyncClient, login: str, auth: dict[str, str], step: str = "") -> None:
    body = {"login": login, "operation": "deposit", "sum": "1000.00"}
    r = await client.put("/account/operation", json=body, headers={**auth, **cid(step or f"dep-{login}")})
    assert r.status_code == 200, r.text


async def balance(client: httpx.AsyncClient, login: str, auth: dict[str, str]) -> int:
    r = await client.get("/account/", params={"login": login}, headers=auth)
    return int(r.json()["balance"])


async def notice_kinds(client: httpx.AsyncClient, login: str, auth: dict[str, str]) -> list[str]:
    r = await client.get("/notice/notices/", params={"login": login}, headers=auth)
    return [m["type"] for m in r.json()["messages"]]


async def drawn(
    client: httpx.AsyncClient, flow: str, fmt: str = "sequencediagram", labels: str = "events"
) -> str:
    r = await client.get(f"/flows/{flow}", params={"format": fmt, "labels": labels}, headers=op(client))
    assert r.status_code == 200, r.text
    return r.text


# -- chaos at run time -------------------------------------------------------------------------------


async def test_chaos_is_set_read_and_turned_off_while_running(lab: httpx.AsyncClient) -> None:
    assert (await lab.get("/admin/chaos", headers=op(lab))).json()["enabled"] is False
    want = {"seed": 7, "duplicate": 0.5, "delay": "0-50ms", "reorder": 0.05, "fail": 0.05}
    r = await lab.put("/admin/chaos", json=want, headers=op(lab))
    assert r.status_code == 200, r.text
    state = (await lab.get("/admin/chaos", headers=op(lab))).json()
    assert state["enabled"] is True and state["chaos"] == want
    assert set(state["injected"]) == {"duplicate", "delay", "reorder", "fail"}
    # what a user's page reads says the same
    _, auth = await account(lab)
    seen = (await lab.get("/flows/chaos", headers=auth)).json()
    assert seen["enabled"] is True and "duplicate=0.5" in seen["spec"]
    r = await lab.put("/admin/chaos", json={}, headers=op(lab))
    assert r.json() == {
        "enabled": False,
        "chaos": {},
        "spec": "",
        "injected": dict.fromkeys(want.keys() - {"seed"}, 0),
    }


@pytest.mark.parametrize(
    "body",
    [
        {"duplicate": 2},
        {"fail": -0.1},
        {"reorder": "often"},
        {"seed": -1},
        {"delay": "abc"},
        {"delay": "-5ms"},
        {"delay": "1e3ms"},
        {"delay": 50},
        {"explode": 0.1},
        [],
    ],
)
async def test_bad_chaos_is_a_problem_and_changes_nothing(lab: httpx.AsyncClient, body: Any) -> None:
    before = await lab.put("/admin/chaos", json={"seed": 3, "duplicate": 0.25}, headers=op(lab))
    r = await lab.put("/admin/chaos", json=body, headers=op(lab))
    assert r.status_code == 422, r.text
    if body == {"delay": "abc"}:
        assert (
            r.json()["detail"]
            == "delay: Value error, delay must be a duration such as 0-50ms, 20ms or 0.1-0.5s"
        )
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await lab.get("/admin/chaos", headers=op(lab))).json()["chaos"] == before.json()["chaos"]


async def test_the_lab_is_the_operators_only(lab: httpx.AsyncClient) -> None:
    _, auth = await account(lab)
    for method, path in [
        ("GET", "/admin/chaos"),
        ("PUT", "/admin/chaos"),
        ("GET", "/admin/modules"),
        ("POST", "/admin/modules/billing/pause"),
        ("POST", "/admin/modules/billing/resume"),
    ]:
        assert (await lab.request(method, path, json={})).status_code == 401, path
        assert (await lab.request(method, path, json={}, headers=auth)).status_code == 403, path
    assert (await lab.post("/admin/modules/ledger/pause", headers=op(lab))).status_code == 404


async def test_duplicates_are_drawn_and_skipped_by_the_inbox_with_no_second_effect(
    lab: httpx.AsyncClient,
) -> None:
    login, auth = await account(lab)
    await deposit(lab, login, auth)
    await lab.put("/admin/chaos", json={"seed": 7, "duplicate": 1}, headers=op(lab))
    r = await lab.post(
        "/order/createOrder", json={"login": login, "price": 300}, headers={**auth, **cid("dup")}
    )
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    await until(lambda: notice_kinds(lab, login, auth))
    assert await balance(lab, login, auth) == 700

    async def every_copy_skipped() -> str | None:
        text = await drawn(lab, "dup")
        return text if text.count("(duplicate delivery)") == 3 and text.count("skipped") == 3 else None

    text = await until(every_copy_skipped)
    assert "Brocker-service->Billing-service: orders.payment_requested.v1 (duplicate delivery)" in text
    assert "note over Billing-service:inbox: a duplicate, skipped" in text
    summary = (await lab.get("/flows/dup", headers=op(lab))).json()
    assert summary["duplicates"] == 3 and summary["outcome"] == "ok"
    assert [r["kind"] for r in summary["records"]].count("skipped") == 3
    assert (await lab.get("/admin/chaos", headers=op(lab))).json()["injected"]["duplicate"] >= 3
    assert await notice_kinds(lab, login, auth) == ["account_created", "payment_succeeded"]


# -- pause and resume --------------------------------------------------------------------------------


async def test_a_paused_billing_holds_the_payment_until_resumed_then_pays_it_once(
    lab: httpx.AsyncClient,
) -> None:
    login, auth = await account(lab)
    await deposit(lab, login, auth)
    r = await lab.post("/admin/modules/billing/pause", headers=op(lab))
    assert r.json()["state"] == "paused" and r.json()["name"] == "billing"
    assert (await lab.post("/admin/modules/billing/pause", headers=op(lab))).status_code == 200  # idempotent
    r = await lab.post("/order/createOrder", json={"login": login, "price": 300}, headers=auth)
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    # its HTTP routes stay up; its backlog holds the payment request
    assert await balance(lab, login, auth) == 1000

    async def backlog() -> int:
        modules = (await lab.get("/admin/modules", headers=op(lab))).json()["modules"]
        assert modules["billing"]["state"] == "paused" and modules["orders"]["state"] == "running"
        return int(modules["billing"]["backlog"])

    assert await until(backlog) >= 1
    assert (await lab.get(location, headers=auth)).json()["status"] == "pending"
    r = await lab.post("/admin/modules/billing/resume", headers=op(lab))
    assert r.json()["state"] == "running"

    async def settled() -> str | None:
        status = (await lab.get(location, headers=auth)).json()["status"]
        return str(status) if status != "pending" else None

    assert await until(settled) == "paid"
    assert await until(lambda: backlog_is(lab, 0))
    await until(lambda: notices_are(lab, login, auth, ["account_created", "payment_succeeded"]))
    assert await balance(lab, login, auth) == 700
    report = (await lab.get("/admin/invariants", headers=op(lab))).json()
    assert report["ok"], report


async def backlog_is(client: httpx.AsyncClient, n: int) -> bool:
    modules = (await client.get("/admin/modules", headers=op(client))).json()["modules"]
    return bool(modules["billing"]["backlog"] == n)


async def notices_are(client: httpx.AsyncClient, login: str, auth: dict[str, str], kinds: list[str]) -> bool:
    return await notice_kinds(client, login, auth) == kinds


# -- the whole story in the diagram ------------------------------------------------------------------


async def seed_steps(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    """The seed's eight steps, each under a correlation id of its own; the ids in order."""
    login, auth = await account(client, "s1-register")
    await until(lambda: notices_are(client, login, auth, ["account_created"]))
    await deposit(client, login, auth, "s3-deposit")
    r = await client.post(
        "/order/createOrder", json={"login": login, "price": 300}, headers={**auth, **cid("s4-order")}
    )
    assert r.json()["status"] == "paid"
    await client.get("/account/", params={"login": login}, headers={**auth, **cid("s5-balance")})
    await until(lambda: notices_are(client, login, auth, ["account_created", "payment_succeeded"]))
    await client.get("/notice/notices/", params={"login": login}, headers={**auth, **cid("s6-notices")})
    r = await client.post(
        "/order/createOrder", json={"login": login, "price": 5000}, headers={**auth, **cid("s7-big-order")}
    )
    assert r.json()["status"] == "rejected"
    kinds = ["account_created", "payment_succeeded", "payment_failed"]
    await until(lambda: notices_are(client, login, auth, kinds))
    await client.get("/notice/notices/", params={"login": login}, headers={**auth, **cid("s8-notices")})
    ids = ["s1-register", "s3-deposit", "s4-order", "s5-balance", "s6-notices", "s7-big-order", "s8-notices"]

    async def all_settled() -> bool:
        flows = (await client.get("/flows", params={"limit": 20}, headers=op(client))).json()["flows"]
        return all(f["outcome"] in ("ok", "rejected") for f in flows if f["correlationId"] in ids)

    await until(all_settled)
    return login, ids


async def test_each_module_says_what_it_changed_as_a_self_arrow(lab: httpx.AsyncClient) -> None:
    await seed_steps(lab)
    order, big = await drawn(lab, "s4-order"), await drawn(lab, "s7-big-order")
    assert "Billing-service->Billing-service: withdraw 300.00, balance 700.00" in order
    assert 'Notification-service->Notification-service: store "payment_succeeded"' in order
    assert re.search(r"Order-service->Order-service: save order \w{8}…, 300\.00, pending", order)
    assert re.search(r"Order-service->Order-service: mark order \w{8}… paid", order)
    assert "Billing-service->Billing-service: refuse 5000.00: insufficient funds, balance 700.00" in big
    register = await drawn(lab, "s1-register")
    assert "Billing-service->Billing-service: open account, balance 0.00" in register
    # activation bars: each service's bar opened is closed, in both syntaxes
    for text in (order, await drawn(lab, "s4-order", "mermaid")):
        opened = Counter(
            line.split()[-1] for line in text.splitlines() if line.strip().startswith("activate ")
        )
        closed = Counter(
            line.split()[-1] for line in text.splitlines() if line.strip().startswith("deactivate ")
        )
        assert (
            opened == closed and len(opened) >= 3  # orders, billing and notifications each had a bar
        )


def seed_arrows() -> list[str]:
    return [line.strip() for line in SEED.read_text().splitlines() if SEED_ARROW.match(line.strip())]


async def test_seed_wording_draws_every_arrow_of_the_seed_line_for_line(lab: httpx.AsyncClient) -> None:
    _, ids = await seed_steps(lab)
    ours = set()
    for flow in ids:
        ours |= set((await drawn(lab, flow, labels="seed")).splitlines())
    missing = [line for line in seed_arrows() if line not in ours]
    assert missing == [], missing
    # and the labels alone, in the Mermaid export too (its line breaks are <br/>)
    mermaid = "".join([await drawn(lab, flow, "mermaid", "seed") for flow in ids])
    for line in seed_arrows():
        label = SEED_ARROW.match(line).group(4).replace("\\n", "<br/>")  # type: ignore[union-attr]
        assert label.strip() in mermaid, label


async def test_the_whole_scenario_is_one_diagram_in_both_syntaxes(lab: httpx.AsyncClient) -> None:
    _, ids = await seed_steps(lab)
    query = {"ids": ",".join([*ids, "never-seen"]), "labels": "seed"}
    r = await lab.get("/flows/scenario", params={**query, "format": "json"}, headers=op(lab))
    body = r.json()
    assert [f["correlationId"] for f in body["flows"]] == ids and body["missing"] == ["never-seen"]
    text = (
        await lab.get("/flows/scenario", params={**query, "format": "sequencediagram"}, headers=op(lab))
    ).text
    dividers = [line for line in text.splitlines() if line.startswith("==")]
    assert dividers == [
        "==register==",
        "==operation==",
        "==order==",
        "==balance==",
        "==notices==",
        "==order==",
        "==notices==",
    ]
    assert [line for line in seed_arrows() if line not in text.splitlines()] == []
    # the seed's order of steps: each step's first arrow after the one before
    firsts = [
        text.index("Создание УЗ"),
        text.index("Пополнение счета"),
        text.index("хватает денежных"),
        text.index("Проверка баланса"),
        text.index("Просмотр уведомлений"),
        text.index("не хватает денежных"),
    ]
    assert firsts == sorted(firsts)
    mermaid = (await lab.get("/flows/scenario", params={**query, "format": "mermaid"}, headers=op(lab))).text
    assert mermaid.startswith("sequenceDiagram\n") and "Note over Client,Notification: order" in mermaid


async def test_a_scenario_shows_only_the_readers_own_flows(lab: httpx.AsyncClient) -> None:
    _, mine = await account(lab, "mine-1")
    await account(lab, "theirs-1")
    r = await lab.get("/flows/scenario", params={"ids": "mine-1,theirs-1"}, headers=mine)
    assert [f["correlationId"] for f in r.json()["flows"]] == ["mine-1"] and r.json()["missing"] == [
        "theirs-1"
    ]
    for bad in ("", ",", "a" * 65, ",".join(str(i) for i in range(51))):
        r = await lab.get("/flows/scenario", params={"ids": bad}, headers=mine)
        assert r.status_code in (400, 422) and r.headers["content-type"].startswith(
            "application/problem+json"
        )
