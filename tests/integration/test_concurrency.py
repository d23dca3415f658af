"""Many requests at once: no overdraft, no lost deposit, one winner per login."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx

from tests.conftest import new_login
from tests.support.auth import PASSWORD, log_in
from tests.support.auth import open_account as support_open_account
from tests.support.poll import until

ORDERS = 50
DEPOSITS = 100
REGISTRATIONS = 20


Auth = dict[str, str]


async def open_account(client: httpx.AsyncClient, deposit: int = 0) -> tuple[str, Auth]:
    return await support_open_account(client, deposit, prefix="conc")


async def balance(client: httpx.AsyncClient, login: str, auth: Auth) -> Decimal:
    r = await client.get("/account/", params={"login": login}, headers=auth)
    assert r.status_code == 200, r.text
    # str() of the parsed float is the shortest text of the JSON number: exact for 2 fraction digits
    return Decimal(str(r.json()["balance"]))


async def notices(client: httpx.AsyncClient, login: str, auth: Auth) -> list[dict[str, Any]]:
    r = await client.get("/notice/notices/", params={"login": login, "limit": 1000}, headers=auth)
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


async def test_fifty_concurrent_orders_pay_exactly_what_the_balance_covers(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client, deposit=1000)

    replies = await asyncio.gather(
        *(
            client.post("/order/createOrder", json={"login": login, "price": 100}, headers=auth)
            for _ in range(ORDERS)
        )
    )

    assert {r.status_code for r in replies} == {200}, [r.text for r in replies if r.status_code != 200]
    outcomes = Counter((r.json()["status"], r.json()["reason"], r.json()["isPaid"]) for r in replies)
    assert outcomes == {("paid", None, True): 10, ("rejected", "insufficient_funds", False): 40}
    assert len({r.json()["id"] for r in replies}) == ORDERS
    assert await balance(client, login, auth) == 0

    listed = (await client.get("/order/orders", params={"login": login, "limit": 1000}, headers=auth)).json()[
        "orders"
    ]
    assert sorted(o["id"] for o in listed) == sorted(r.json()["id"] for r in replies)
    assert Counter(o["status"] for o in listed) == {"paid": 10, "rejected": 40}

    async def all_noticed() -> bool:
        return len(await notices(client, login, auth)) >= ORDERS + 1

    await until(all_noticed)
    messages = await notices(client, login, auth)
    assert len(messages) == ORDERS + 1
    assert messages[0]["type"] == "account_created"
    assert Counter(m["type"] for m in messages) == {
        "account_created": 1,
        "payment_succeeded": 10,
        "payment_failed": 40,
    }
    paid_ids = {r.json()["id"] for r in replies if r.json()["status"] == "paid"}
    assert {m["orderId"] for m in messages if m["type"] == "payment_succeeded"} == paid_ids
    assert len({m["orderId"] for m in messages[1:]}) == ORDERS
    # a later order of the same login is the fence: a duplicate notice would arrive before its own
    fence = await client.post("/order/createOrder", json={"login": login, "price": 1}, headers=auth)
    assert fence.json()["reason"] == "insufficient_funds"

    async def fenced() -> bool:
        return len(await notices(client, login, auth)) >= ORDERS + 2

    await until(fenced)
    messages = await notices(client, login, auth)
    assert len(messages) == ORDERS + 2
    assert messages[-1]["orderId"] == fence.json()["id"]


async def test_a_hundred_parallel_deposits_of_a_cent_to_a_unit_sum_exactly(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client)
    amounts = [Decimal(i) / 100 for i in range(1, DEPOSITS + 1)]

    def wire(amount: Decimal, i: int) -> float | str:
        # half as JSON numbers, half as decimal strings: both forms must add up the same
        return float(amount) if i % 2 else str(amount)

    replies = await asyncio.gather(
        *(
            client.put(
                "/account/operation",
                json={"login": login, "operation": "deposit", "sum": wire(a, i)},
                headers=auth,
            )
            for i, a in enumerate(amounts)
        )
    )

    assert {r.status_code for r in replies} == {200}, [r.text for r in replies if r.status_code != 200]
    assert sum(amounts) == Decimal("50.50")
    assert await balance(client, login, auth) == sum(amounts)
    assert sorted(Decimal(str(r.json()["sum"])) for r in replies) == amounts
    # every deposit saw its own balance: the running totals are all different, the last is the sum
    after = [Decimal(str(r.json()["balance"])) for r in replies]
    assert len(set(after)) == DEPOSITS
    assert max(after) == sum(amounts)
    assert len({r.json()["operationId"] for r in replies}) == DEPOSITS


async def test_parallel_registrations_of_one_login_have_exactly_one_winner(client: httpx.AsyncClient) -> None:
    login = new_login("race")

    replies = await asyncio.gather(
        *(
            client.post(
                "/person/register",
                json={"login": login, "email": f"n{i}@example.com", "password": PASSWORD},
            )
            for i in range(REGISTRATIONS)
        )
    )

    statuses = Counter(r.status_code for r in replies)
    assert statuses == {200: 1, 409: REGISTRATIONS - 1}, [r.text for r in replies]
    for r in replies:
        if r.status_code == 409:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["status"] == 409
    winner = next(r.json() for r in replies if r.status_code == 200)
    auth = await log_in(client, login)
    stored = await client.get(f"/person/persons/{login}", headers=auth)
    assert stored.status_code == 200
    assert (stored.json()["id"], stored.json()["email"]) == (winner["id"], winner["email"])

    async def account_open() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(account_open)

    async def noticed() -> bool:
        return [m["type"] for m in await notices(client, login, auth)] == ["account_created"]

    await until(noticed)
    # a later notice of the same login is the fence: a second account_created would come before it
    r = await client.post("/order/createOrder", json={"login": login, "price": 1}, headers=auth)
    assert r.json()["reason"] == "insufficient_funds"

    async def fenced() -> bool:
        return [m["type"] for m in await notices(client, login, auth)] == [
            "account_created",
            "payment_failed",
        ]

    await until(fenced)
