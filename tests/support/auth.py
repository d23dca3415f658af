"""The token flow every test uses: register with a password, log in, send the Bearer token."""

from __future__ import annotations

import httpx

from tests.conftest import new_login

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
