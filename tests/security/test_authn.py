"""Authentication abuse: every per-user endpoint refuses a missing, malformed, expired, forged or
foreign token with 401; logins are rate limited; passwords are never echoed, logged or stored."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from app.config import Settings
from app.edge.auth import Auth, Unauthorized
from app.main import create_app
from tests.conftest import new_login
from tests.support.asgi import running, shared_app
from tests.support.auth import PASSWORD, bearer, sign_up
from tests.support.poll import until

# the token tests share one app (in the module's event loop); the limit and password tests build their own
shared_app_loop = pytest.mark.asyncio(loop_scope="module")
Headers = Callable[[str, str], dict[str, str]]  # (login, the app's secret) -> request headers


def _token(login: str, secret: str, *, exp: int = 3600, algorithm: str = "HS256") -> str:
    now = int(time.time())
    return jwt.encode({"sub": login, "iat": now, "exp": now + exp}, secret, algorithm=algorithm)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none(login: str) -> str:
    now = int(time.time())
    claims = {"sub": login, "iat": now, "exp": now + 3600}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


BAD_AUTH: dict[str, Headers] = {
    "no header": lambda login, secret: {},
    "Bearer and nothing": lambda login, secret: {"Authorization": "Bearer"},
    "Bearer and spaces": lambda login, secret: {"Authorization": "Bearer    "},
    "Basic": lambda login, secret: {"Authorization": "Basic x"},
    "garbage header": lambda login, secret: {"Authorization": "garbage"},
    "garbage token": lambda login, secret: bearer("not.a.token"),
    "expired": lambda login, secret: bearer(_token(login, secret, exp=-60)),
    "wrong signature": lambda login, secret: bearer(_token(login, "another secret of 32 bytes or more!")),
    "alg none": lambda login, secret: bearer(_alg_none(login)),
    "HS512 with the right secret": lambda login, secret: bearer(_token(login, secret, algorithm="HS512")),
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None


def endpoints(login: str) -> dict[str, Endpoint]:
    q = {"login": login}
    return {
        "GET /person/persons/{login}": Endpoint("GET", f"/person/persons/{login}"),
        "GET /account/": Endpoint("GET", "/account/", q),
        "PUT /account/operation": Endpoint(
            "PUT", "/account/operation", json={"login": login, "operation": "deposit", "sum": 5}
        ),
        "POST /order/createOrder": Endpoint("POST", "/order/createOrder", json={"login": login, "price": 1}),
        "GET /order/orders": Endpoint("GET", "/order/orders", q),
        "GET /order/orders/{id}": Endpoint("GET", "/order/orders/0123456789abcdef"),
        "GET /notice/notices/": Endpoint("GET", "/notice/notices/", q),
    }


ENDPOINT_IDS = list(endpoints("x"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """One in-memory app for the module: every test signs up users of its own."""
    async with shared_app() as c:
        yield c


async def _call(client: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str]) -> httpx.Response:
    return await client.request(
        endpoint.method, endpoint.path, params=endpoint.params, json=endpoint.json, headers=headers
    )


@pytest.mark.parametrize("endpoint_id", ENDPOINT_IDS)
@pytest.mark.parametrize("bad", list(BAD_AUTH))
@shared_app_loop
async def test_a_bad_or_missing_token_is_401_everywhere(
    client: httpx.AsyncClient, bad: str, endpoint_id: str
) -> None:
    login, auth = await sign_up(client)
    endpoint = endpoints(login)[endpoint_id]
    r = await _call(client, endpoint, BAD_AUTH[bad](login, client.app.state.auth.secret))  # type: ignore[attr-defined]
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["status"] == 401
    # and nothing happened: the same account still has no money and no order
    balance = await client.get("/account/", params={"login": login}, headers=auth)
    assert balance.status_code in (200, 404) and balance.json().get("balance", 0) == 0
    orders = await client.get("/order/orders", params={"login": login}, headers=auth)
    assert orders.json()["orders"] == []


@pytest.mark.parametrize("endpoint_id", ENDPOINT_IDS)
@shared_app_loop
async def test_a_good_token_passes_the_same_door(client: httpx.AsyncClient, endpoint_id: str) -> None:
    login, _ = await sign_up(client)
    endpoint = endpoints(login)[endpoint_id]
    good = bearer(_token(login, client.app.state.auth.secret))  # type: ignore[attr-defined]
    r = await _call(client, endpoint, good)
    assert r.status_code != 401, r.text


@pytest.mark.parametrize("endpoint_id", ENDPOINT_IDS)
@shared_app_loop
async def test_a_signed_token_of_an_unregistered_login_opens_only_that_logins_empty_door(
    client: httpx.AsyncClient, endpoint_id: str
) -> None:
    # valid by signature and expiry alone (no read of person's database): it is refused on another
    # login's data like any other login's token, and finds nothing of its own
    login, auth = await sign_up(client)
    ghost = bearer(_token(new_login("ghost"), client.app.state.auth.secret))  # type: ignore[attr-defined]
    r = await _call(client, endpoints(login)[endpoint_id], ghost)
    assert r.status_code == (404 if endpoint_id == "GET /order/orders/{id}" else 403), r.text
    orders = await client.get("/order/orders", params={"login": login}, headers=auth)
    assert orders.json()["orders"] == []


@shared_app_loop
async def test_wrong_password_and_unknown_login_get_the_same_answer(client: httpx.AsyncClient) -> None:
    login, _ = await sign_up(client)
    wrong = await client.post("/person/login", json={"login": login, "password": "not the password"})
    unknown = await client.post(
        "/person/login", json={"login": new_login("ghost"), "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert wrong.headers["content-type"] == unknown.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """An app with small login limits (3 a minute per login, 5 per address); one client per address."""
    app = create_app(settings.with_(login_rate_per_login=3, login_rate_per_address=5))
    clients: list[httpx.AsyncClient] = []

    def from_address(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    async with app.router.lifespan_context(app):
        yield from_address
        for c in clients:
            await c.aclose()


def _assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert 0 < int(r.headers["retry-after"]) <= 60


async def test_logins_are_limited_per_login(limited: Callable[[str], httpx.AsyncClient]) -> None:
    client = limited("10.0.0.1")
    login, _ = await sign_up(client)  # a successful log-in: not counted against the login
    for _ in range(3):
        r = await client.post("/person/login", json={"login": login, "password": "wrong password"})
        assert r.status_code == 401
    # the right password does not help once the login is over its limit, from any address (these two
    # are others: the first has one attempt left of its five, for the last line)
    for c in (limited("10.0.0.2"), limited("10.0.0.7")):
        _assert_limited(await c.post("/person/login", json={"login": login, "password": PASSWORD}))
    # another login from the first address is still served
    await sign_up(client)


async def test_a_successful_login_does_not_count_against_the_login(
    limited: Callable[[str], httpx.AsyncClient],
) -> None:
    # a script logging in more often than the per-login limit (3 a minute here) is never locked out
    login, _ = await sign_up(limited("10.0.0.5"))
    for i in range(5):
        r = await limited(f"10.0.1.{i}").post("/person/login", json={"login": login, "password": PASSWORD})
        assert r.status_code == 200, r.text
    # failures still count, and once over the limit even the right password waits
    client = limited("10.0.0.6")
    for _ in range(3):
        r = await client.post("/person/login", json={"login": login, "password": "wrong password"})
        assert r.status_code == 401
    _assert_limited(await client.post("/person/login", json={"login": login, "password": PASSWORD}))


async def test_logins_are_limited_per_address(limited: Callable[[str], httpx.AsyncClient]) -> None:
    client = limited("10.0.0.3")
    for _ in range(5):
        r = await client.post("/person/login", json={"login": new_login(), "password": "wrong password"})
        assert r.status_code == 401
    _assert_limited(await client.post("/person/login", json={"login": new_login(), "password": "x"}))
    # another address is still served
    await sign_up(limited("10.0.0.4"))


async def test_passwords_are_never_answered_logged_or_stored(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_word = "Tr0ub4dor&3-never-echo"
    app = create_app(settings)
    async with running(app) as c:
        login = new_login()
        body = {"login": login, "email": f"{login}@example.com", "password": secret_word}
        answers = [
            await c.post("/person/register", json=body),
            await c.post("/person/register", json=body),  # 409: taken
            await c.post("/person/register", json={**body, "login": "x"}),  # 422
            await c.post("/person/register", json={**body, "password": secret_word * 10}),  # too long
            await c.post("/person/login", json={"login": login, "password": secret_word}),
            await c.post("/person/login", json={"login": login, "password": secret_word + "x"}),
            await c.post("/person/login", json={"login": login, "password": secret_word, "x": 1}),
        ]
        assert [r.status_code for r in answers] == [200, 409, 422, 422, 200, 401, 422]
        texts = [r.text + str(r.headers) for r in answers]
        r = await c.get(f"/person/persons/{login}", headers=await _log_in(c, login, secret_word))
        texts.append(r.text)
    assert all(secret_word not in t for t in texts)
    assert secret_word not in caplog.text
    stored = _person_files(settings.data_dir)
    assert secret_word.encode() not in stored
    assert b"$argon2id$" in stored


def _person_files(data_dir: Path) -> bytes:
    """The person module's SQLite file and its WAL, where a fresh row may still sit."""
    return b"".join(f.read_bytes() for f in sorted(data_dir.glob("person.sqlite3*")))


async def _log_in(client: httpx.AsyncClient, login: str, password: str) -> dict[str, str]:
    r = await client.post("/person/login", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    return bearer(r.json()["accessToken"])


async def test_auth_mode_off_warns_loudly_and_trusts_everyone(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = create_app(settings.with_(auth_mode="off"))
    assert any(
        "AUTH_MODE=off" in rec.getMessage() and rec.levelno >= logging.WARNING for rec in caplog.records
    )
    async with running(app) as c:
        login = new_login()
        body = {"login": login, "email": f"{login}@example.com", "password": PASSWORD}
        assert (await c.post("/person/register", json=body)).status_code == 200

        async def open_without_a_token() -> bool:
            return (await c.get("/account/", params={"login": login})).status_code == 200

        await until(open_without_a_token)


def test_a_remembered_token_still_expires_and_a_forged_one_is_never_taken_for_it(tmp_path: Path) -> None:
    auth = Auth(Settings(data_dir=tmp_path))
    now = int(time.time())
    short = jwt.encode({"sub": "ann", "iat": now, "exp": now + 2}, auth.secret, algorithm="HS256")
    assert auth.login_of(short) == "ann"  # verified once, then remembered
    forged = short[:-2] + ("AA" if not short.endswith("AA") else "BB")
    with pytest.raises(Unauthorized, match="not valid"):
        auth.login_of(forged)
    # the clock moves past its expiry: the remembered token is refused like any expired one
    auth._verified[short] = ("ann", time.time() - 1)
    with pytest.raises(Unauthorized, match="expired"):
        auth.login_of(short)
    assert short not in auth._verified
