"""The token flow every test uses: register with a password, log in, send the Bearer token."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.edge.auth import operator_token
from tests.conftest import new_login
from tests.support.poll import until

PASSWORD = "correct horse battery staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def operator(app: FastAPI) -> dict[str, str]:
    """The operator's Authorization header for ``app`` (``client.app`` of tests.support.asgi)."""
    return bearer(operator_token(app.state.settings))


def operator_at(data_dir: Path) -> dict[str, str]:
    """The operator's Authorization header for a ``python -m app`` serving ``data_dir``."""
    return bearer(operator_token(Settings(data_dir=data_dir)))


async def log_in(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> dict[str, str]:
    r = await client.post("/person/login", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["tokenType"] == "Bearer" and token["expiresIn"] > 0
    return bearer(token["accessToken"])


async def sign_up(
    client: httpx.AsyncClient, login: str | None = None, prefix: str = "u", **profile: str
) -> tuple[str, dict[str, str]]:
    """Register a fresh login and log it in: (login, Authorization headers)."""
    login = login or new_login(prefix)
    body = {"login": login, "email": f"{login}@example.com", "password": PASSWORD, **profile}
    r = await client.post("/person/register", json=body)
    assert r.status_code == 200, r.text
    return login, await log_in(client, login)


async def open_account(
    client: httpx.AsyncClient, deposit: int = 0, prefix: str = "u"
) -> tuple[str, dict[str, str]]:
    """Sign up, wait (with a deadline) until billing has opened the account, deposit if asked."""
    login, auth = await sign_up(client, prefix=prefix)

    async def account_open() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(account_open)
    if deposit:
        r = await client.put(
            "/account/operation", json={"login": login, "operation": "deposit", "sum": deposit}, headers=auth
        )
        assert r.status_code == 200, r.text
    return login, auth
