"""Whatever the operator sets in the lab, while orders flow, the books balance: each fault at its
worst, all of them together, settings changed mid-run, modules paused and resumed under chaos."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import new_login
from tests.support.asgi import running
from tests.support.auth import operator, sign_up
from tests.support.poll import until

pytestmark = pytest.mark.slow

USERS, ORDERS = 20, 200
SETTINGS: dict[str, list[dict[str, Any]]] = {
    "every delivery twice": [{"seed": 1, "duplicate": 1}],
    "half the deliveries fail": [{"seed": 2, "fail": 0.5}],
    "reordered and delayed": [{"seed": 3, "reorder": 0.3, "delay": "0-5ms"}],
    "all at once": [{"seed": 4, "duplicate": 0.3, "delay": "0-5ms", "reorder": 0.1, "fail": 0.2}],
    "changed mid-run": [
        {"seed": 5, "duplicate": 1},
        {"seed": 6, "fail": 0.3},
        {},
        {"seed": 7, "reorder": 0.5},
    ],
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
async def test_invariants_hold_under_any_chaos_set_while_running(settings: Settings, name: str) -> None:
    await run_orders(settings, SETTINGS[name], pause=[])


async def test_invariants_hold_with_modules_paused_and_resumed_under_chaos(settings: Settings) -> None:
    await run_orders(settings, SETTINGS["all at once"], pause=["billing", "notifications", "orders"])


async def run_orders(settings: Settings, chaos: list[dict[str, Any]], pause: list[str]) -> None:
    app = create_app(
        settings.with_(bus_max_attempts=40, order_reply_timeout=2.0, login_rate_per_address=10_000)
    )
    rng = random.Random(7)
    async with running(app, timeout=30) as client:
        admin = operator(app)
        logins = [new_login("lab") for _ in range(USERS)]
        auth = dict(await asyncio.gather(*(sign_up(client, login) for login in logins)))
        await asyncio.gather(*(fund(client, login, auth[login]) for login in logins))
        assert (await client.put("/admin/chaos", json=chaos[0], headers=admin)).status_code == 200
        limit = asyncio.Semaphore(32)
        answered = [0]

        async def order(i: int) -> None:
            async with limit:
                login = logins[i % USERS]
                body = {"login": login, "price": rng.choice([10, 40, 90])}
                r = await client.post("/order/createOrder", json=body, headers=auth[login])
                assert r.status_code in (200, 202), r.text
                answered[0] += 1

        async def operate() -> None:
            # the operator at work while the orders flow: the next setting, a pause and a resume,
            # each after another share of the orders has been answered
            steps = max(len(chaos), len(pause) + 1)
            for k in range(1, steps):
                share = k * ORDERS // (steps + 1)
                await until(lambda: answered[0] >= share, timeout=30)  # noqa: B023 (awaited here)
                if k < len(chaos):
                    r = await client.put("/admin/chaos", json=chaos[k], headers=admin)
                    assert r.status_code == 200
                if k - 1 < len(pause):
                    module = pause[k - 1]
                    await client.post(f"/admin/modules/{module}/pause", headers=admin)
                    await client.post(f"/admin/modules/{module}/resume", headers=admin)

        orders = asyncio.gather(*(order(i) for i in range(ORDERS)))
        for module in pause:
            await client.post(f"/admin/modules/{module}/pause", headers=admin)
        await operate()
        for module in pause:
            await client.post(f"/admin/modules/{module}/resume", headers=admin)
        await orders

        async def clean() -> dict[str, Any] | None:
            report: dict[str, Any] = (await client.get("/admin/invariants", headers=admin)).json()
            figures = {i["name"]: i for i in report["invariants"]}["orders paid, rejected or freshly pending"]
            terminal = figures["figures"]["paid"] + figures["figures"]["rejected"] == ORDERS
            return report if report["ok"] and terminal else None

        await until(clean, timeout=60, interval=0.2)
        assert (await client.get("/admin/deadletters", headers=admin)).json()["deadLetters"] == []
        modules = (await client.get("/admin/modules", headers=admin)).json()["modules"]
        assert {m["state"] for m in modules.values()} == {"running"}
        assert all(m["backlog"] == 0 for m in modules.values()), modules


async def fund(client: httpx.AsyncClient, login: str, auth: dict[str, str]) -> None:
    async def opened() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(opened, timeout=20)
    body = {"login": login, "operation": "deposit", "sum": 500}
    assert (await client.put("/account/operation", json=body, headers=auth)).status_code == 200
