"""The token flow every test uses: register with a password, log in, send the Bearer token."""

from __future__ import annotations

import httpx

from tests.conftest import new_login
from tests.support.poll import until

PASSWORD = "correct horse battery staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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
