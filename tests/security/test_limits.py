"""Limits: no mass assignment, bounded bodies, bounded JSON nesting, bounded memory under a burst of
registrations (argon2id hashing is the memory-hungry part)."""

from __future__ import annotations

import asyncio
import resource
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher

from app.config import Settings
from app.main import create_app
from tests.conftest import new_login
from tests.support.asgi import running, shared_app
from tests.support.auth import PASSWORD, sign_up
from tests.support.poll import until

pytestmark = pytest.mark.asyncio(loop_scope="module")
EXTRAS: dict[str, Any] = {"balance": 1_000_000, "isPaid": True, "status": "paid", "id": "0" * 32}
MAX_BODY = 64 * 1024
BODY_ROUTES = [("POST", "/person/register"), ("PUT", "/account/operation"), ("POST", "/order/createOrder")]
DEEP = ["[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """One in-memory app for the module: every test signs up users of its own."""
    async with shared_app() as c:
        yield c


async def _funded(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    login, auth = await sign_up(client)

    async def account_open() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(account_open)
    r = await client.put(
        "/account/operation", json={"login": login, "operation": "deposit", "sum": 10}, headers=auth
    )
    assert r.status_code == 200, r.text
    return login, auth


async def _balance_and_orders(client: httpx.AsyncClient, login: str, auth: dict[str, str]) -> Any:
    q = {"login": login}
    balance = (await client.get("/account/", params=q, headers=auth)).json()["balance"]
    orders = (await client.get("/order/orders", params=q, headers=auth)).json()["orders"]
    return balance, orders


@pytest.mark.parametrize("extra", list(EXTRAS))
async def test_register_refuses_fields_it_does_not_own(client: httpx.AsyncClient, extra: str) -> None:
    login = new_login()
    body = {"login": login, "email": f"{login}@example.com", "password": PASSWORD, extra: EXTRAS[extra]}
    r = await client.post("/person/register", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    # nothing was registered: the login is still free
    r = await client.post("/person/login", json={"login": login, "password": PASSWORD})
    assert r.status_code == 401
    del body[extra]
    assert (await client.post("/person/register", json=body)).status_code == 200


@pytest.mark.parametrize("extra", list(EXTRAS))
@pytest.mark.parametrize("route", ["operation", "createOrder"])
async def test_money_routes_refuse_fields_they_do_not_own(
    client: httpx.AsyncClient, route: str, extra: str
) -> None:
    login, auth = await _funded(client)
    before = await _balance_and_orders(client, login, auth)
    if route == "operation":
        body = {"login": login, "operation": "deposit", "sum": 1, extra: EXTRAS[extra]}
        r = await client.put("/account/operation", json=body, headers=auth)
    else:
        body = {"login": login, "price": 1, extra: EXTRAS[extra]}
        r = await client.post("/order/createOrder", json=body, headers=auth)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await _balance_and_orders(client, login, auth) == before


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_body_over_64_kib_is_413(
    client: httpx.AsyncClient, method: str, path: str, streamed: bool
) -> None:
    login, auth = await _funded(client)
    before = await _balance_and_orders(client, login, auth)
    # a valid body padded with JSON whitespace: accepted, it would change state
    valid = {
        "/person/register": f'{{"login": "{new_login()}", "email": "a@b.io", "password": "{PASSWORD}"}}',
        "/account/operation": f'{{"login": "{login}", "operation": "deposit", "sum": 1}}',
        "/order/createOrder": f'{{"login": "{login}", "price": 1}}',
    }[path]
    content = valid.encode() + b" " * (MAX_BODY + 1)

    async def chunks() -> Any:
        for i in range(0, len(content), 8192):
            yield content[i : i + 8192]

    headers = {**auth, "Content-Type": "application/json"}
    r = await client.request(method, path, content=chunks() if streamed else content, headers=headers)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await _balance_and_orders(client, login, auth) == before


@pytest.mark.parametrize("shape", ["arrays", "objects"])
@pytest.mark.parametrize(("method", "path"), [*BODY_ROUTES, ("POST", "/person/login")])
async def test_json_nested_10000_deep_is_a_quick_400(
    client: httpx.AsyncClient, method: str, path: str, shape: str
) -> None:
    _, auth = await sign_up(client)
    body = DEEP[0] if shape == "arrays" else DEEP[1]
    began = time.perf_counter()
    r = await client.request(
        method, path, content=body.encode(), headers={**auth, "Content-Type": "application/json"}
    )
    elapsed = time.perf_counter() - began
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 400
    # a sanity cap, not a benchmark: it answers in milliseconds; a parser that recursed for real (or
    # a worker stuck on the body) would take seconds or never answer
    assert elapsed < 2.0


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class CountingHasher:
    """The app's own hasher, recording how many hashes run at once (the most in ``most``)."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner, self.running, self.most = inner, 0, 0
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return self.inner.hash(password)
        finally:
            with self._lock:
                self.running -= 1

    def verify(self, stored: str, password: str) -> bool:
        return self.inner.verify(stored, password)


@pytest_asyncio.fixture(loop_scope="module")
async def production_cost_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with argon2id at the production cost (the ``settings`` fixture lowers it): the memory
    that cost takes per hash is what the burst below is bounded against."""
    production = Settings()
    cost = {"auth_hash_time_cost": production.auth_hash_time_cost}
    cost["auth_hash_memory_kib"] = production.auth_hash_memory_kib
    async with running(create_app(settings.with_(**cost))) as c:
        yield c


@pytest.mark.slow
async def test_200_parallel_registrations_all_succeed_in_bounded_memory(
    production_cost_client: httpx.AsyncClient,
) -> None:
    client = production_cost_client
    auth = client.app.state.auth  # type: ignore[attr-defined]
    assert auth.hasher.memory_cost == 19 * 1024
    auth.hasher = hasher = CountingHasher(auth.hasher)
    before = _peak_rss_mib()

    async def register() -> int:
        login = new_login("burst")
        body = {"login": login, "email": f"{login}@example.com", "password": PASSWORD}
        return (await client.post("/person/register", json=body)).status_code

    statuses = await asyncio.gather(*(register() for _ in range(200)))
    growth = _peak_rss_mib() - before
    assert statuses == [200] * 200
    # argon2id takes 19 MiB per hash: AUTH_HASH_CONCURRENCY=4 bounds that to ~76 MiB (+ the requests
    # themselves); 200 hashes at once would need ~3.7 GiB. 400 MiB is far above the first and far below
    # the second. (The default thread pool, min(32, cpus + 4) threads, would also bound it, so the
    # semaphore is checked directly too.)
    print(f"\n200 registrations: peak RSS +{growth:.0f} MiB, at most {hasher.most} hashes at once")
    assert growth < 400, f"peak RSS grew by {growth:.0f} MiB"
    assert hasher.most <= 4, f"{hasher.most} hashes ran at once"
