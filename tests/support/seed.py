"""The seed diagram's eight steps, written once and run against any base URL or ASGI app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.conftest import new_login
from tests.support.auth import PASSWORD, log_in
from tests.support.poll import until


async def walk_seed_scenario(client: httpx.AsyncClient) -> str:
    login = new_login("seed")
    # 1. register
    r = await client.post(
        "/person/register", json={"login": login, "email": f"{login}@example.com", "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    assert r.json()["login"] == login and "password" not in r.text
    auth = await log_in(client, login)

    # 2. billing opens the account and notification stores "account created" (via the bus)
    async def account_open() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(account_open)
    balance = (await client.get("/account/", params={"login": login}, headers=auth)).json()
    assert balance["balance"] == 0

    async def notices() -> list[dict[str, object]]:
        r = await client.get("/notice/notices/", params={"login": login}, headers=auth)
        assert r.status_code == 200
        messages: list[dict[str, object]] = r.json()["messages"]
        return messages

    await until(_has(notices, ["account_created"]))

    # 3. deposit
    r = await client.put(
        "/account/operation", json={"login": login, "operation": "deposit", "sum": "1000.00"}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == 1000

    # 4. affordable order: the reply comes only after billing paid it
    r = await client.post("/order/createOrder", json={"login": login, "price": 300}, headers=auth)
    assert r.status_code == 200, r.text
    order = r.json()
    assert (order["isPaid"], order["status"], order["reason"]) == (True, "paid", None)
    assert order["price"] == 300 and order["settledAt"]

    # 5. balance decreased
    r = await client.get("/account/", params={"login": login}, headers=auth)
    assert r.json()["balance"] == 700

    # 6. notices so far
    await until(_has(notices, ["account_created", "payment_succeeded"]))
    paid_note = (await notices())[1]
    assert "300.00" in str(paid_note["text"]) and "700.00" in str(paid_note["text"])
    assert paid_note["orderId"] == order["id"]

    # 7. unaffordable order: rejected, balance unchanged
    r = await client.post("/order/createOrder", json={"login": login, "price": 5000}, headers=auth)
    assert r.status_code == 200, r.text
    rejected = r.json()
    assert (rejected["isPaid"], rejected["status"], rejected["reason"]) == (
        False,
        "rejected",
        "insufficient_funds",
    )
    assert (await client.get("/account/", params={"login": login}, headers=auth)).json()["balance"] == 700

    # 8. the insufficient-funds message is there too
    await until(_has(notices, ["account_created", "payment_succeeded", "payment_failed"]))
    return login


def _has(
    notices: Callable[[], Awaitable[list[dict[str, object]]]], expected: list[str]
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return [m["type"] for m in await notices()] == expected

    return check
