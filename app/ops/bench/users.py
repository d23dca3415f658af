"""The bench's users: one per client, registered, logged in, its account open and funded before the
clock starts."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import aiohttp
import orjson

from app.ops.bench.server import READY_TIMEOUT, BenchError

DEPOSIT = 100_000_000  # per account; affordable orders cost 1, so no capped run can spend it
LOGIN_WAIT_CAP = 120.0  # a rate-limited login is retried after its Retry-After, for at most this long
JSON_HEADERS = {"Content-Type": "application/json"}
Headers = dict[str, str]


@dataclass(frozen=True, slots=True)
class User:
    login: str
    headers: Headers  # JSON content type and the Bearer token


async def prepare(session: aiohttp.ClientSession, base: str, clients: int) -> list[User]:
    """One user per client: registered, logged in, its account open (polled), and a deposit no run
    can spend."""
    run_id = uuid4().hex[:8]
    password = secrets.token_urlsafe(18)  # one per run: the users live only as long as the run cares
    logins = [f"bench-{run_id}-{i:04d}" for i in range(clients)]
    started = time.monotonic()

    async def one(login: str) -> User:
        body = {"login": login, "email": f"{login}@bench.example", "password": password}
        await _expect_ok(session, "POST", base + "/person/register", body)
        headers = {**JSON_HEADERS, "Authorization": f"Bearer {await _log_in(session, base, login, password)}"}
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            async with session.get(base + "/account/", params={"login": login}, headers=headers) as r:
                await r.read()
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"no account for {login} after {READY_TIMEOUT:.0f}s")
            await asyncio.sleep(0.02)
        deposit = {"login": login, "operation": "deposit", "sum": DEPOSIT}
        await _expect_ok(session, "PUT", base + "/account/operation", deposit, headers)
        return User(login, headers)

    users = await asyncio.gather(*(one(login) for login in logins))
    took = time.monotonic() - started
    print(f"{clients} users registered, logged in, accounts open and funded in {took:.2f}s")
    return list(users)


async def _log_in(session: aiohttp.ClientSession, base: str, login: str, password: str) -> str:
    """The user's access token. A 429 (a server with its default login limits) is waited out as its
    Retry-After says, for at most LOGIN_WAIT_CAP seconds in all."""
    url = base + "/person/login"
    body = orjson.dumps({"login": login, "password": password})
    deadline = time.monotonic() + LOGIN_WAIT_CAP
    while True:
        async with session.post(url, data=body, headers=JSON_HEADERS) as r:
            raw, status, retry_after = await r.read(), r.status, r.headers.get("Retry-After", "1")
        if status == 200:
            token: str = orjson.loads(raw)["accessToken"]
            return token
        wait = float(retry_after) if retry_after.isdigit() else 1.0
        if status != 429 or time.monotonic() + wait > deadline:
            hint = (
                " (raise the server's LOGIN_RATE_PER_ADDRESS for this many clients)" if status == 429 else ""
            )
            raise BenchError(f"POST {url} answered {status}{hint}: {raw[:300].decode(errors='replace')}")
        await asyncio.sleep(wait)


async def _expect_ok(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: dict[str, Any],
    headers: Headers = JSON_HEADERS,
) -> None:
    async with session.request(method, url, data=orjson.dumps(body), headers=headers) as r:
        text = await r.text()
        if r.status != 200:
            raise BenchError(f"{method} {url} answered {r.status}: {text[:300]}")
