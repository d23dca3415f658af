"""Seeded chaos on every delivery: duplicates, delays, reordering, failures. The books still balance."""

from __future__ import annotations

import asyncio
import random

import pytest

from app.config import Settings
from app.main import create_app
from app.messaging.chaos import Chaos, ChaosBus
from tests.conftest import new_login
from tests.support.asgi import running
from tests.support.auth import operator, sign_up
from tests.support.poll import until

pytestmark = pytest.mark.slow

USERS = 100
ORDERS = 2000
CHAOS = "seed=42,duplicate=0.1,delay=0-20ms,reorder=0.05,fail=0.05"


def test_the_same_seed_gives_the_same_fault_schedule() -> None:
    a, b, c = Chaos.parse(CHAOS), Chaos.parse(CHAOS), Chaos.parse(CHAOS.replace("42", "43"))
    keys = [(f"e{i}", "billing", 1, "fail") for i in range(200)]
    assert [a.draw(*k) for k in keys] == [b.draw(*k) for k in keys]
    assert [a.draw(*k) for k in keys] != [c.draw(*k) for k in keys]
    assert (a.delay_min, a.delay_max, a.duplicate, a.fail) == (0.0, 0.02, 0.1, 0.05)


@pytest.mark.parametrize("spec", ["delay=abc", "fail=2", "explode=0.1"])
def test_a_bad_chaos_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        Chaos.parse(spec)


async def test_2000_orders_under_chaos_end_terminal_with_clean_invariants(settings: Settings) -> None:
    app = create_app(
        settings.with_(
            bus_chaos=CHAOS,
            bus_max_attempts=25,
            order_reply_timeout=10.0,
            login_rate_per_address=10_000,  # every user logs in from this one test address
        )
    )
    rng = random.Random(42)
    async with running(app, timeout=30) as client:
        bus = app.state.system.chaos
        assert isinstance(bus, ChaosBus)
        admin = operator(app)
        logins = [new_login("chaos") for _ in range(USERS)]
        auth = dict(await asyncio.gather(*(sign_up(client, login) for login in logins)))

        async def funded(login: str) -> None:
            async def opened() -> bool:
                r = await client.get("/account/", params={"login": login}, headers=auth[login])
                return r.status_code == 200

            await until(opened, timeout=20)
            r = await client.put(
                "/account/operation",
                json={"login": login, "operation": "deposit", "sum": 500},
                headers=auth[login],
            )
            assert r.status_code == 200

        await asyncio.gather(*(funded(login) for login in logins))
        limit = asyncio.Semaphore(64)
        statuses: dict[int, int] = {}

        async def order(i: int) -> None:
            async with limit:
                login = logins[i % USERS]
                body = {"login": login, "price": rng.choice([10, 40, 90])}
                r = await client.post("/order/createOrder", json=body, headers=auth[login])
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        await asyncio.gather(*(order(i) for i in range(ORDERS)))
        assert set(statuses) <= {200, 202}, statuses

        async def all_terminal() -> bool:
            report = (await client.get("/admin/invariants", headers=admin)).json()
            by_name = {i["name"]: i for i in report["invariants"]}
            figures = by_name["orders paid, rejected or freshly pending"]["figures"]
            return bool(figures["paid"] + figures["rejected"] == ORDERS)

        await until(all_terminal, timeout=60, interval=0.2)

        async def clean() -> dict[str, object] | None:
            report: dict[str, object] = (await client.get("/admin/invariants", headers=admin)).json()
            return report if report["ok"] else None

        await until(clean, timeout=30, interval=0.2)
        dead = (await client.get("/admin/deadletters", headers=admin)).json()["deadLetters"]
        assert dead == []
        # every kind of fault really happened
        assert all(n > 0 for n in bus.injected.values()), bus.injected
