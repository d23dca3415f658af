"""The fast lane answers its routes' ordinary requests exactly as FastAPI does, and hands FastAPI every
other request untouched (app/edge/fastlane.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from app.edge.fastlane import FastLane
from app.main import create_app
from tests.support.asgi import running
from tests.support.auth import open_account
from tests.support.settings import memory_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments
AUTH = "$auth"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def both() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The same app twice: with its fast lane, and with the fast lane's routes emptied (FastAPI alone).
    In memory, and shared by the module's tests: each opens accounts of its own on both."""
    settings = memory_settings(login_rate_per_address=1_000_000)
    slow = create_app(settings)
    for middleware in slow.user_middleware:
        if middleware.cls is FastLane:  # type: ignore[comparison-overlap]
            middleware.kwargs["routes"] = {}
    async with running(create_app(settings)) as fast, running(slow) as plain:
        yield fast, plain


def _shape(r: httpx.Response, login: str) -> tuple[int, str, Any]:
    """Status, content type and body, the login written as $login and ids and times as their type:
    they differ between two apps, their presence and type do not."""
    body: Any = orjson.loads(r.content.replace(login.encode(), b"$login")) if r.content else None
    if isinstance(body, dict):
        for key in ("id", "createdAt", "settledAt", "updatedAt"):
            if key in body:
                body[key] = type(body[key]).__name__
        for message in body.get("messages", []):
            for key in ("id", "createdAt", "text", "orderId"):
                message[key] = type(message[key]).__name__
    return r.status_code, r.headers.get("content-type", ""), body


async def _same_answers(
    fast: httpx.AsyncClient, plain: httpx.AsyncClient, requests: list[Request], *, deposit: int = 0
) -> None:
    a_login, a_auth = await open_account(fast, deposit=deposit)
    b_login, b_auth = await open_account(plain, deposit=deposit)
    for method, path, kwargs in requests:
        answers = []
        for client, login, auth in ((fast, a_login, a_auth), (plain, b_login, b_auth)):
            args = _fill(kwargs, login, auth)
            answers.append(_shape(await client.request(method, path, **args), login))
        assert answers[0] == answers[1], (method, path, kwargs)


def _fill(value: Any, login: str, auth: dict[str, str]) -> Any:
    """``$login`` and ``$auth`` (the Authorization header) put in, wherever they stand."""
    if value == "$login":
        return login
    if value == "$auth":
        return auth
    if isinstance(value, bytes):
        return value.replace(b"$login", login.encode())
    if isinstance(value, dict):
        filled = {k: _fill(v, login, auth) for k, v in value.items() if k != "$auth"}
        return {**auth, **filled} if "$auth" in value else filled
    if isinstance(value, list | tuple):
        return type(value)(_fill(v, login, auth) for v in value)
    return value


async def test_ordinary_requests_get_the_answer_fastapi_gives(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    fast, plain = both
    await _same_answers(
        fast,
        plain,
        [
            ("GET", "/account/", {"params": {"login": "$login"}, "headers": "$auth"}),
            ("GET", "/account", {"params": {"login": "$login"}, "headers": "$auth"}),
            ("GET", "/notice/notices/", {"params": {"login": "$login"}, "headers": "$auth"}),
            ("GET", "/notice/notices", {"params": {"login": "$login", "limit": "5"}, "headers": "$auth"}),
            ("POST", "/order/createOrder", {"json": {"login": "$login", "price": 10}, "headers": "$auth"}),
            ("POST", "/order/createOrder", {"json": {"login": "$login", "price": 10**9}, "headers": "$auth"}),
            # settled before it was answered: the balance shows the charge
            ("GET", "/account/", {"params": {"login": "$login"}, "headers": "$auth"}),
        ],
        deposit=100,
    )


@pytest.mark.parametrize(
    "request_",
    [
        # problems the fast routes raise themselves
        ("GET", "/account/", {"params": {"login": "$login"}}),
        ("GET", "/account/", {"params": {"login": "someone-else"}, "headers": "$auth"}),
        ("GET", "/account/", {"params": {"login": "$login"}, "headers": {"Authorization": "Bearer x.y.z"}}),
        ("POST", "/order/createOrder", {"json": {"login": "someone-else", "price": 1}, "headers": "$auth"}),
        (
            "POST",
            "/order/createOrder",
            {"json": {"login": "$login", "price": 5, "items": []}, "headers": "$auth"},
        ),
        ("POST", "/order/createOrder", {"json": {"login": "$login"}, "headers": "$auth"}),
        # what only FastAPI answers: the fast route gives up
        ("GET", "/account/", {"headers": "$auth"}),
        ("GET", "/account/", {"params": {"login": "x"}, "headers": "$auth"}),
        ("GET", "/account/", {"params": [("login", "$login"), ("login", "$login")], "headers": "$auth"}),
        ("GET", "/notice/notices/", {"params": {"login": "$login", "limit": "0"}, "headers": "$auth"}),
        ("GET", "/notice/notices/", {"params": {"login": "$login", "limit": "abc"}, "headers": "$auth"}),
        ("POST", "/order/createOrder", {"content": b"{not json", "headers": "$auth"}),
        ("POST", "/order/createOrder", {"json": {"login": "$login", "price": -1}, "headers": "$auth"}),
        (
            "POST",
            "/order/createOrder",
            {"json": {"login": "$login", "price": 1, "extra": 1}, "headers": "$auth"},
        ),
        (
            "POST",
            "/order/createOrder",
            {
                "content": b'{"login": "$login", "price": 1}',
                "headers": {"$auth": 1, "Content-Type": "text/plain"},
            },
        ),
    ],
    ids=lambda r: f"{r[0]} {r[1]} {sorted(r[2])}",
)
async def test_every_other_request_gets_fastapis_answer(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], request_: Request
) -> None:
    fast, plain = both
    await _same_answers(fast, plain, [request_], deposit=100)


async def test_a_request_given_to_fastapi_keeps_its_body(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    fast, _ = both
    login, auth = await open_account(fast, deposit=100)
    # a second Idempotency-Key header: the fast route gives up, and FastAPI must still see the body
    headers = [*auth.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    r = await fast.post("/order/createOrder", json={"login": login, "price": 7}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["price"] == 7.0


def _lane(client: httpx.AsyncClient) -> FastLane:
    """The app's FastLane instance, found in its built middleware stack."""
    layer: Any = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, FastLane):
        layer = layer.app
    return layer


async def test_ordinary_requests_are_answered_in_the_lane_and_odd_ones_handed_on(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    fast, _ = both
    login, auth = await open_account(fast, deposit=100)
    lane = _lane(fast)
    before = lane.answered, lane.handed_on
    assert (await fast.get("/account/", params={"login": login}, headers=auth)).status_code == 200
    assert (await fast.get("/notice/notices/", params={"login": login}, headers=auth)).status_code == 200
    r = await fast.post("/order/createOrder", json={"login": login, "price": 1}, headers=auth)
    assert r.status_code == 200
    assert (lane.answered - before[0], lane.handed_on - before[1]) == (3, 0)
    # a parameter given twice is FastAPI's to refuse (400 invalid-parameter)
    r = await fast.get("/account/", params=[("login", login), ("login", login)], headers=auth)
    assert r.status_code == 400
    assert (lane.answered - before[0], lane.handed_on - before[1]) == (3, 1)
