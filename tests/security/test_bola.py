"""The BOLA matrix: with A's token, every way of naming B's data answers 403 (B's login) or 404 (B's
order id), never B's data, and B's balance, orders and notices stay as they were. The same requests
naming A's own data succeed, so the matrix can fail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from string import Template
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.asgi import shared_app
from tests.support.auth import sign_up
from tests.support.poll import until

pytestmark = pytest.mark.asyncio(loop_scope="module")

NO_BODY: Any = object()
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


@dataclass(frozen=True)
class User:
    login: str
    auth: dict[str, str]
    order_id: str


@dataclass(frozen=True)
class Case:
    """One request from A. ``$login`` and ``$order`` name the target's data (B's, or A's own for the
    control run) in the path, query, JSON body or raw body."""

    id: str
    method: str
    path: str
    foreign: int  # the status when the target is B
    params: dict[str, str] = field(default_factory=dict)
    json: Any = NO_BODY
    content: str | None = None


CASES = [
    Case("GET /person/persons/{login}", "GET", "/person/persons/$login", 403),
    Case("GET /account/?login", "GET", "/account/", 403, params={"login": "$login"}),
    Case("GET /account?login", "GET", "/account", 403, params={"login": "$login"}),
    Case(
        "PUT /account/operation deposit",
        "PUT",
        "/account/operation",
        403,
        json={"login": "$login", "operation": "deposit", "sum": 5},
    ),
    Case(
        "PUT /account/operation withdraw",
        "PUT",
        "/account/operation",
        403,
        json={"login": "$login", "operation": "withdraw", "sum": 1},
    ),
    Case(
        "POST /order/createOrder",
        "POST",
        "/order/createOrder",
        403,
        json={"login": "$login", "price": 1},
    ),
    Case(
        "POST /order/createOrder items",
        "POST",
        "/order/createOrder",
        403,
        json={"login": "$login", "items": [{"name": "tea", "quantity": 1, "price": 1}]},
    ),
    Case("GET /order/orders?login", "GET", "/order/orders", 403, params={"login": "$login"}),
    Case("GET /order/orders/{id}", "GET", "/order/orders/$order", 404),
    Case("GET /notice/notices/?login", "GET", "/notice/notices/", 403, params={"login": "$login"}),
    Case("GET /notice/notices?login", "GET", "/notice/notices", 403, params={"login": "$login"}),
    # a duplicate JSON key: the last one wins in the parser, and it is the one checked
    Case(
        "PUT /account/operation duplicate key",
        "PUT",
        "/account/operation",
        403,
        content='{"login": "$me", "operation": "deposit", "sum": 5, "login": "$login"}',
    ),
    Case(
        "POST /order/createOrder duplicate key",
        "POST",
        "/order/createOrder",
        403,
        content='{"login": "$me", "price": 1, "login": "$login"}',
    ),
]


async def _user(client: httpx.AsyncClient, prefix: str) -> User:
    login, auth = await sign_up(client, prefix=prefix)

    async def account_open() -> bool:
        r = await client.get("/account/", params={"login": login}, headers=auth)
        return r.status_code == 200

    await until(account_open)
    r = await client.put(
        "/account/operation", json={"login": login, "operation": "deposit", "sum": 100}, headers=auth
    )
    assert r.status_code == 200, r.text
    r = await client.post("/order/createOrder", json={"login": login, "price": 30}, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    user = User(login, auth, r.json()["id"])
    await until(lambda: _kinds(client, user))  # the payment notice has landed: B's state is still
    return user


async def _kinds(client: httpx.AsyncClient, user: User) -> bool:
    r = await client.get("/notice/notices/", params={"login": user.login}, headers=user.auth)
    return {"account_created", "payment_succeeded"} <= {m["type"] for m in r.json()["messages"]}


async def _state(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    """Everything of ``user``'s that A could change, read with ``user``'s own token."""
    q, h = {"login": user.login}, user.auth
    balance = (await client.get("/account/", params=q, headers=h)).json()
    orders = (await client.get("/order/orders", params=q, headers=h)).json()
    notices = (await client.get("/notice/notices/", params=q, headers=h)).json()
    return {"balance": balance, "orders": orders, "notices": notices}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """One in-memory app for the module: every test signs up users of its own."""
    async with shared_app() as c:
        yield c


@pytest_asyncio.fixture(loop_scope="module")
async def pair(client: httpx.AsyncClient) -> tuple[User, User]:
    """A and B: each signed up, funded (100), with one paid order (30)."""
    return await _user(client, "alice"), await _user(client, "bob")


async def _send(client: httpx.AsyncClient, case: Case, me: User, target: User) -> httpx.Response:
    values = {"login": target.login, "order": target.order_id, "me": me.login}
    path = Template(case.path).substitute(values)
    params = {k: Template(v).substitute(values) for k, v in case.params.items()}
    kw: dict[str, Any] = {"params": params, "headers": me.auth}
    if case.json is not NO_BODY:
        kw["json"] = json.loads(Template(json.dumps(case.json)).substitute(values))
    if case.content is not None:
        kw["content"] = Template(case.content).substitute(values).encode()
        kw["headers"] = {**me.auth, "Content-Type": "application/json"}
    return await client.request(case.method, path, **kw)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_a_token_never_reaches_another_users_data(
    client: httpx.AsyncClient, pair: tuple[User, User], case: Case
) -> None:
    a, b = pair
    before = await _state(client, b)
    r = await _send(client, case, a, b)
    assert r.status_code == case.foreign, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == case.foreign
    assert set(problem) <= PROBLEM_FIELDS  # a problem, and nothing of B's beside the names A sent
    assert await _state(client, b) == before


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_the_same_request_for_your_own_data_succeeds(
    client: httpx.AsyncClient, pair: tuple[User, User], case: Case
) -> None:
    a, b = pair
    before = await _state(client, b)
    r = await _send(client, case, a, a)
    assert r.status_code == 200, r.text
    assert a.login in r.text and b.login not in r.text
    assert await _state(client, b) == before


async def test_a_repeated_query_parameter_cannot_smuggle_another_login(
    client: httpx.AsyncClient, pair: tuple[User, User]
) -> None:
    a, b = pair
    for path in ("/account/", "/order/orders", "/notice/notices/"):
        for order in ((a.login, b.login), (b.login, a.login)):
            r = await client.get(path, params=[("login", order[0]), ("login", order[1])], headers=a.auth)
            # no pick of the framework's decides whose data it is: two values are refused
            assert r.status_code == 400, r.text
            assert r.json()["type"] == "urn:eventcollab:problem:invalid-parameter"
            assert b.login not in r.text


async def test_another_users_idempotency_key_replays_nothing_of_theirs(
    client: httpx.AsyncClient, pair: tuple[User, User]
) -> None:
    a, b = pair
    key = "shared-key-1"
    r = await client.post(
        "/order/createOrder",
        json={"login": b.login, "price": 2},
        headers={**b.auth, "Idempotency-Key": key},
    )
    assert r.status_code == 200, r.text
    before = await _state(client, b)
    r = await client.post(
        "/order/createOrder",
        json={"login": a.login, "price": 2},
        headers={**a.auth, "Idempotency-Key": key},
    )
    # keys are scoped per login: A's first use of the key creates A's order
    assert r.status_code == 200, r.text
    assert r.json()["login"] == a.login and b.login not in r.text
    assert await _state(client, b) == before
