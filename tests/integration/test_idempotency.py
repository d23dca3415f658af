"""Idempotency-Key on createOrder and account operations: a retry replays, never repeats."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx

from tests.support.auth import open_account as support_open_account
from tests.support.poll import until

RETRIES = 20


Auth = dict[str, str]


def keyed(auth: Auth, key: str) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key}


async def open_account(client: httpx.AsyncClient, deposit: int = 0) -> tuple[str, Auth]:
    return await support_open_account(client, deposit, prefix="idem")


async def balance(client: httpx.AsyncClient, login: str, auth: Auth) -> float:
    r = await client.get("/account/", params={"login": login}, headers=auth)
    assert r.status_code == 200, r.text
    value: float = r.json()["balance"]
    return value


async def orders(client: httpx.AsyncClient, login: str, auth: Auth) -> list[dict[str, Any]]:
    r = await client.get("/order/orders", params={"login": login}, headers=auth)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["orders"]
    return found


async def notice_types(client: httpx.AsyncClient, login: str, auth: Auth) -> list[str]:
    r = await client.get("/notice/notices/", params={"login": login}, headers=auth)
    assert r.status_code == 200, r.text
    return [m["type"] for m in r.json()["messages"]]


async def notices_become(client: httpx.AsyncClient, login: str, auth: Auth, expected: list[str]) -> None:
    async def arrived() -> bool:
        return await notice_types(client, login, auth) == expected

    await until(arrived)


async def fence(client: httpx.AsyncClient, login: str, auth: Auth, before: list[str]) -> None:
    """Notices of one login arrive in the order billing emits them, so once an unaffordable order's
    notice is last, any duplicate a replay had caused would already be in the list before it."""
    r = await client.post("/order/createOrder", json={"login": login, "price": 999_999_999}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["reason"] == "insufficient_funds"
    await notices_become(client, login, auth, [*before, "payment_failed"])


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


async def test_sequential_order_retries_with_one_key_charge_once(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client, deposit=1000)
    key = uuid4().hex
    body = {"login": login, "price": 100}
    replies = [await client.post("/order/createOrder", json=body, headers=keyed(auth, key)) for _ in range(3)]

    assert [r.status_code for r in replies] == [200, 200, 200]
    assert len({r.json()["id"] for r in replies}) == 1
    assert all((r.json()["status"], r.json()["isPaid"]) == ("paid", True) for r in replies)
    assert await balance(client, login, auth) == 900
    assert [o["id"] for o in await orders(client, login, auth)] == [replies[0].json()["id"]]
    await fence(client, login, auth, ["account_created", "payment_succeeded"])
    assert await balance(client, login, auth) == 900


async def test_twenty_concurrent_order_retries_with_one_key_charge_once(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client, deposit=1000)
    key = uuid4().hex
    body = {"login": login, "price": 100, "description": "retried in a storm"}
    replies = await asyncio.gather(
        *(client.post("/order/createOrder", json=body, headers=keyed(auth, key)) for _ in range(RETRIES))
    )

    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["id"] for r in replies}) == 1
    assert {r.json()["status"] for r in replies} == {"paid"}
    assert await balance(client, login, auth) == 900
    listed = await orders(client, login, auth)
    assert [o["id"] for o in listed] == [replies[0].json()["id"]]
    await fence(client, login, auth, ["account_created", "payment_succeeded"])
    assert await balance(client, login, auth) == 900


async def test_a_replayed_rejected_order_stays_rejected_after_the_balance_grows(
    client: httpx.AsyncClient,
) -> None:
    login, auth = await open_account(client, deposit=50)
    key = uuid4().hex
    body = {"login": login, "price": 100}
    first = await client.post("/order/createOrder", json=body, headers=keyed(auth, key))
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["reason"]) == ("rejected", "insufficient_funds")
    r = await client.put(
        "/account/operation", json={"login": login, "operation": "deposit", "sum": 100}, headers=auth
    )
    assert r.status_code == 200, r.text

    again = await client.post("/order/createOrder", json=body, headers=keyed(auth, key))

    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert (again.json()["status"], again.json()["isPaid"]) == ("rejected", False)
    assert await balance(client, login, auth) == 150
    assert len(await orders(client, login, auth)) == 1


async def test_sequential_deposit_retries_with_one_key_deposit_once(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client)
    key = uuid4().hex
    body = {"login": login, "operation": "deposit", "sum": "12.34"}
    replies = [await client.put("/account/operation", json=body, headers=keyed(auth, key)) for _ in range(3)]

    assert [r.status_code for r in replies] == [200, 200, 200]
    assert len({r.json()["operationId"] for r in replies}) == 1
    assert all(r.json() == replies[0].json() for r in replies)
    assert replies[0].json()["balance"] == 12.34
    assert await balance(client, login, auth) == 12.34


async def test_twenty_concurrent_deposit_retries_with_one_key_deposit_once(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client)
    key = uuid4().hex
    body = {"login": login, "operation": "top-up", "sum": 250}
    replies = await asyncio.gather(
        *(client.put("/account/operation", json=body, headers=keyed(auth, key)) for _ in range(RETRIES))
    )

    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["operationId"] for r in replies}) == 1
    assert {r.json()["balance"] for r in replies} == {250}
    assert await balance(client, login, auth) == 250


async def test_a_replay_answers_the_original_balance_not_the_current_one(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client)
    key = uuid4().hex
    body = {"login": login, "operation": "deposit", "sum": 100}
    first = await client.put("/account/operation", json=body, headers=keyed(auth, key))
    assert first.status_code == 200, first.text
    other = await client.put("/account/operation", json={**body, "sum": 5}, headers=auth)
    assert other.status_code == 200, other.text

    again = await client.put("/account/operation", json=body, headers=keyed(auth, key))

    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.json()["balance"] == 100
    assert await balance(client, login, auth) == 105


async def test_concurrent_withdraw_retries_with_one_key_withdraw_once(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client, deposit=100)
    key = uuid4().hex
    body = {"login": login, "operation": "debit", "sum": 60}
    replies = await asyncio.gather(
        *(client.put("/account/operation", json=body, headers=keyed(auth, key)) for _ in range(RETRIES))
    )

    # a second withdrawal of 60 from 40 would be a 409: every reply must be the first one's 200
    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["operationId"] for r in replies}) == 1
    assert await balance(client, login, auth) == 40


async def test_an_order_key_reused_with_another_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    login, auth = await open_account(client, deposit=1000)
    key = uuid4().hex
    first = await client.post(
        "/order/createOrder", json={"login": login, "price": 100}, headers=keyed(auth, key)
    )
    assert first.status_code == 200, first.text
    await notices_become(client, login, auth, ["account_created", "payment_succeeded"])
    listed = await orders(client, login, auth)

    for other in ({"login": login, "price": 200}, {"login": login, "price": 100, "description": "x"}):
        r = await client.post("/order/createOrder", json=other, headers=keyed(auth, key))
        body = assert_problem(r, 422)
        assert body["type"].endswith("idempotency-key-reused")

    assert await balance(client, login, auth) == 900
    assert await orders(client, login, auth) == listed
    # the key still replays its own request
    again = await client.post(
        "/order/createOrder", json={"login": login, "price": 100}, headers=keyed(auth, key)
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    await fence(client, login, auth, ["account_created", "payment_succeeded"])
    assert await balance(client, login, auth) == 900


async def test_an_operation_key_reused_with_another_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    login, auth = await open_account(client)
    key = uuid4().hex
    body = {"login": login, "operation": "deposit", "sum": 10}
    first = await client.put("/account/operation", json=body, headers=keyed(auth, key))
    assert first.status_code == 200, first.text

    for other in ({**body, "sum": 11}, {**body, "operation": "withdraw"}):
        r = await client.put("/account/operation", json=other, headers=keyed(auth, key))
        problem = assert_problem(r, 422)
        assert problem["type"].endswith("idempotency-key-reused")

    assert await balance(client, login, auth) == 10
    again = await client.put("/account/operation", json=body, headers=keyed(auth, key))
    assert again.status_code == 200 and again.json() == first.json()
    assert await balance(client, login, auth) == 10


async def test_one_key_string_on_an_order_and_on_an_operation_does_not_clash(
    client: httpx.AsyncClient,
) -> None:
    login, auth = await open_account(client, deposit=1000)
    key = uuid4().hex
    order = await client.post(
        "/order/createOrder", json={"login": login, "price": 100}, headers=keyed(auth, key)
    )
    assert order.status_code == 200 and order.json()["status"] == "paid", order.text

    deposit = await client.put(
        "/account/operation",
        json={"login": login, "operation": "deposit", "sum": 30},
        headers=keyed(auth, key),
    )

    assert deposit.status_code == 200, deposit.text
    assert deposit.json()["balance"] == 930
    assert await balance(client, login, auth) == 930
    replayed = await client.post(
        "/order/createOrder", json={"login": login, "price": 100}, headers=keyed(auth, key)
    )
    assert replayed.json()["id"] == order.json()["id"]
    again = await client.put(
        "/account/operation",
        json={"login": login, "operation": "deposit", "sum": 30},
        headers=keyed(auth, key),
    )
    assert again.json()["operationId"] == deposit.json()["operationId"]
    assert await balance(client, login, auth) == 930
    assert len(await orders(client, login, auth)) == 1


async def test_a_key_another_login_already_used_is_its_own_key_never_answered_with_the_first_order(
    client: httpx.AsyncClient,
) -> None:
    a, a_auth = await open_account(client, deposit=100)
    b, b_auth = await open_account(client, deposit=100)
    key = uuid4().hex
    first = await client.post(
        "/order/createOrder", json={"login": a, "price": 10}, headers=keyed(a_auth, key)
    )
    assert first.status_code == 200, first.text

    second = await client.post(
        "/order/createOrder", json={"login": b, "price": 10}, headers=keyed(b_auth, key)
    )

    # keys are scoped per login since the token names the caller: b's key is b's own, so b gets a new
    # order of its own (it used to be a 422), and never a's order
    assert second.status_code == 200, second.text
    assert second.json()["id"] != first.json()["id"]
    assert (second.json()["login"], second.json()["status"]) == (b, "paid")
    assert [o["id"] for o in await orders(client, b, b_auth)] == [second.json()["id"]]
    assert [o["id"] for o in await orders(client, a, a_auth)] == [first.json()["id"]]
    assert (await balance(client, a, a_auth), await balance(client, b, b_auth)) == (90, 90)
    # and a's key still replays a's order for a
    again = await client.post(
        "/order/createOrder", json={"login": a, "price": 10}, headers=keyed(a_auth, key)
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert await balance(client, a, a_auth) == 90
