"""No outcome within ORDER_REPLY_TIMEOUT: 202 pending with a Location; a later run settles the order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.main import create_app
from tests.support.asgi import running as started
from tests.support.auth import sign_up
from tests.support.poll import until
from tests.support.settings import FAST_HASH, FAST_RETRY

WITHOUT_BILLING = ("person", "orders", "notifications")
Auth = dict[str, str]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One run of the app. Not the ``client`` fixture: these tests stop a run and start the next on
    the same data_dir inside one test, which a fixture's teardown cannot do."""
    async with started(create_app(settings)) as client:
        yield client


def full(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, **FAST_HASH, **FAST_RETRY)


async def open_account(client: httpx.AsyncClient, deposit: int) -> tuple[str, Auth]:
    login, auth = await sign_up(client, prefix="late")

    async def account_open() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(account_open)
    r = await client.put(
        "/account/operation", json={"login": login, "operation": "deposit", "sum": deposit}, headers=auth
    )
    assert r.status_code == 200, r.text
    return login, auth


async def place_unanswered_order(
    tmp_path: Path, login: str, auth: Auth, price: int
) -> tuple[dict[str, Any], str]:
    """Create an order while billing is not running; returns the 202 body and its Location."""
    settings = full(tmp_path).with_(modules=WITHOUT_BILLING, order_reply_timeout=0.2)
    async with running(settings) as client:
        r = await client.post("/order/createOrder", json={"login": login, "price": price}, headers=auth)
        assert r.status_code == 202, r.text
        order: dict[str, Any] = r.json()
        location = r.headers["location"]
        assert location == f"/order/orders/{order['id']}"
        assert (order["status"], order["isPaid"], order["reason"], order["settledAt"]) == (
            "pending",
            None,
            None,
            None,
        )
        assert order["price"] == price and order["login"] == login

        polled = await client.get(location, headers=auth)
        assert polled.status_code == 200, polled.text
        assert (polled.json()["id"], polled.json()["status"], polled.json()["isPaid"]) == (
            order["id"],
            "pending",
            None,
        )
        listed = (await client.get("/order/orders", params={"login": login}, headers=auth)).json()["orders"]
        assert [(o["id"], o["status"]) for o in listed] == [(order["id"], "pending")]
    return order, location


async def settled(client: httpx.AsyncClient, location: str, auth: Auth) -> dict[str, Any]:
    async def outcome() -> dict[str, Any] | None:
        r = await client.get(location, headers=auth)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return None if body["status"] == "pending" else body

    result: dict[str, Any] = await until(outcome, timeout=10)
    return result


async def test_an_order_with_no_outcome_in_time_is_202_pending_with_a_location(tmp_path: Path) -> None:
    settings = full(tmp_path).with_(modules=WITHOUT_BILLING, order_reply_timeout=0.2)
    async with running(settings) as client:
        login, auth = await sign_up(client, prefix="late")

        r = await client.post("/order/createOrder", json={"login": login, "price": 10}, headers=auth)

        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending" and r.json()["isPaid"] is None
        polled = await client.get(r.headers["location"], headers=auth)
        assert polled.status_code == 200 and polled.json()["status"] == "pending"
        # billing's routes are not served by this run
        assert (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 404


async def test_a_late_payment_settles_a_pending_order_when_billing_starts(tmp_path: Path) -> None:
    async with running(full(tmp_path)) as client:
        login, auth = await open_account(client, deposit=500)

    order, location = await place_unanswered_order(tmp_path, login, auth, price=100)

    # the orders outbox still holds the payment request: this run's relay publishes it at start-up; the
    # token of the first run still holds (its signing secret is kept in the data dir)
    async with running(full(tmp_path)) as client:
        outcome = await settled(client, location, auth)
        assert outcome["id"] == order["id"]
        assert (outcome["status"], outcome["isPaid"], outcome["reason"]) == ("paid", True, None)
        assert outcome["settledAt"] is not None
        r = await client.get("/account/", params={"login": login}, headers=auth)
        assert r.json()["balance"] == 400

        async def noticed() -> bool:
            r = await client.get("/notice/notices/", params={"login": login}, headers=auth)
            return [m["type"] for m in r.json()["messages"]] == ["account_created", "payment_succeeded"]

        await until(noticed)


async def test_a_late_rejection_settles_a_pending_order_when_billing_starts(tmp_path: Path) -> None:
    async with running(full(tmp_path)) as client:
        login, auth = await open_account(client, deposit=50)

    order, location = await place_unanswered_order(tmp_path, login, auth, price=100)

    async with running(full(tmp_path)) as client:
        outcome = await settled(client, location, auth)
        assert outcome["id"] == order["id"]
        assert (outcome["status"], outcome["isPaid"], outcome["reason"]) == (
            "rejected",
            False,
            "insufficient_funds",
        )
        r = await client.get("/account/", params={"login": login}, headers=auth)
        assert r.json()["balance"] == 50
