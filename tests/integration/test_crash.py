"""kill -9 of the server with orders in flight, restart on the same data: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from tests.conftest import new_login
from tests.support.auth import sign_up
from tests.support.poll import until
from tests.support.server import Server

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

USERS = 10
ORDERS = 240


async def _order(
    client: httpx.AsyncClient, auth: dict[str, str], key: str, body: dict[str, object]
) -> httpx.Response | None:
    try:
        return await client.post("/order/createOrder", json=body, headers={**auth, "Idempotency-Key": key})
    except httpx.HTTPError:
        return None  # the server died under this request


async def test_kill_9_mid_flow_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(7)
    data = tmp_path / "data"
    logins = [new_login("crash") for _ in range(USERS)]
    requests = [
        (uuid4().hex, {"login": rng.choice(logins), "price": rng.choice([50, 120, 250, 400])})
        for _ in range(ORDERS)
    ]
    answers: dict[str, httpx.Response] = {}
    auth: dict[str, dict[str, str]] = {}

    # deliveries held 100-200 ms: at the kill, orders are committed and waiting for billing (the flow
    # alone takes ~2 ms now, too quick to leave any committed-but-unanswered order to the timing)
    server = Server(data, env={"ORDER_REPLY_TIMEOUT": "10", "BUS_CHAOS": "seed=1,delay=100-200ms"}).start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as client:
            for login in logins:
                _, auth[login] = await sign_up(client, login)
            for login in logins:
                await until(_account_open(client, login, auth[login]), timeout=10)
                r = await client.put(
                    "/account/operation",
                    json={"login": login, "operation": "deposit", "sum": 1000},
                    headers=auth[login],
                )
                assert r.status_code == 200

            async def fire(key: str, body: dict[str, object]) -> None:
                r = await _order(client, auth[str(body["login"])], key, body)
                if r is not None:
                    answers[key] = r

            tasks = [asyncio.create_task(fire(k, b)) for k, b in requests]
            await until(lambda: len(answers) >= ORDERS // 5, timeout=30)
            server.kill()  # orders in flight: some committed and unanswered, some never committed
            await asyncio.gather(*tasks)
    finally:
        server.kill()
    assert len(answers) < ORDERS, "the kill came too late to test anything"

    restarted_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    with Server(data, env={"ORDER_REPLY_TIMEOUT": "10"}) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as client:
            # a client whose request died retries with the same key; the server replays or redoes it (the
            # tokens outlive the restart: the signing secret is kept in the data dir)
            retried = await asyncio.gather(
                *(_order(client, auth[str(b["login"])], k, b) for k, b in requests if k not in answers)
            )
            assert all(r is not None and r.status_code in (200, 202) for r in retried)
            unanswered = [k for k, _ in requests if k not in answers]
            replayed = 0
            for key, reply in zip(unanswered, retried, strict=True):
                assert reply is not None
                answers[key] = reply
                replayed += reply.json()["createdAt"] < restarted_at
            # orders that committed before the kill but never got their answer come back as replays
            assert replayed > 0, "no committed-but-unanswered order at the kill: nothing was tested"
            ids = {key: r.json()["id"] for key, r in answers.items()}
            assert len(set(ids.values())) == ORDERS, "one order per idempotency key"

            async def all_settled() -> bool:
                n = 0
                for login in logins:
                    r = await client.get(
                        "/order/orders", params={"login": login, "limit": 1000}, headers=auth[login]
                    )
                    orders = r.json()["orders"]
                    if any(o["status"] == "pending" for o in orders):
                        return False
                    n += len(orders)
                return n == ORDERS

            await until(all_settled, timeout=30, interval=0.2)

            # balances agree with the orders, login by login
            for login in logins:
                orders = (
                    await client.get(
                        "/order/orders", params={"login": login, "limit": 1000}, headers=auth[login]
                    )
                ).json()["orders"]
                paid = sum(o["price"] for o in orders if o["status"] == "paid")
                balance = (
                    await client.get("/account/", params={"login": login}, headers=auth[login])
                ).json()["balance"]
                assert balance == 1000 - paid
                notes = (
                    await client.get(
                        "/notice/notices/", params={"login": login, "limit": 1000}, headers=auth[login]
                    )
                ).json()
                assert len(notes["messages"]) == 1 + len(orders)
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "check", "--data-dir", str(data), stdout=asyncio.subprocess.PIPE
    )
    report, _ = await check.communicate()
    assert check.returncode == 0, report.decode()


def _account_open(
    client: httpx.AsyncClient, login: str, auth: dict[str, str]
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    return check
