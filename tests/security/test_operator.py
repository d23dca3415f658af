"""The operator surface: every operator endpoint against every kind of caller (the matrix), the operator
token's life (generated once, kept across restarts, a setting wins), and the security the OpenAPI
document declares."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.bus import Envelope
from app.config import Settings, SettingsError
from app.edge.auth import Auth, operator_token
from app.main import create_app
from tests.support.asgi import running
from tests.support.auth import bearer, operator, operator_at, sign_up
from tests.support.poll import until
from tests.support.server import Server

CALLERS = ("anonymous", "user token", "wrong operator token", "operator token")
ADMIN = {"anonymous": 401, "user token": 403, "wrong operator token": 401, "operator token": 200}
# a user's token opens /flows* too, on that login's own flows: another login's flow is not found
FLOWS = {"anonymous": 401, "user token": 200, "wrong operator token": 401, "operator token": 200}
OTHERS_FLOW = {**FLOWS, "user token": 404}
# (method, path template, expected status per caller)
MATRIX = {
    "GET /admin/outbox": ("GET", "/admin/outbox", ADMIN),
    "GET /admin/deadletters": ("GET", "/admin/deadletters", ADMIN),
    "POST /admin/deadletters/{id}/redrive": ("POST", "/admin/deadletters/{letter}/redrive", ADMIN),
    "GET /admin/invariants": ("GET", "/admin/invariants", ADMIN),
    "GET /metrics": ("GET", "/metrics", ADMIN),
    "GET /flows": ("GET", "/flows", FLOWS),
    "GET /flows/{id}": ("GET", "/flows/{flow}", OTHERS_FLOW),
    "GET /flows/stream": ("GET", "/flows/stream", FLOWS),
    "GET /flows/chaos": ("GET", "/flows/chaos", FLOWS),
}
OPEN = ["/health/live", "/health/ready", "/", "/docs", "/openapi.json", "/asyncapi.yaml", "/web/app.js"]


@dataclass
class Surface:
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]  # caller -> request headers
    letter: str  # a dead letter waiting for a redrive
    flow: str  # a flow of another login than the user token's


def poison(login: str) -> Envelope:
    # a negative charge: billing refuses it every time, so it is dead-lettered
    data = {"order_id": "o-poison", "login": login, "amount": -500}
    return Envelope(type="orders.payment_requested.v1", source="orders", subject=login, data=data)


@pytest.fixture
async def surface(settings: Settings) -> AsyncIterator[Surface]:
    # a short stream life: the operator's and the user's streams answer 200 and end by themselves
    app = create_app(settings.with_(bus_max_attempts=2, flows_stream_seconds=0.2))
    async with running(app) as client:
        other, _ = await sign_up(client, prefix="other")
        _, user = await sign_up(client, prefix="user")
        await app.state.system.bus.publish(poison(other))
        admin = operator(app)

        async def dead_letter() -> str | None:
            letters = (await client.get("/admin/deadletters", headers=admin)).json()["deadLetters"]
            return str(letters[0]["id"]) if letters else None

        letter = await until(dead_letter)
        flows = (await client.get("/flows", params={"login": other}, headers=admin)).json()["flows"]
        wrong = bearer(secrets.token_urlsafe(32))
        headers = {
            "anonymous": {},
            "user token": user,
            "wrong operator token": wrong,
            "operator token": admin,
        }
        yield Surface(client, headers, letter, flows[0]["correlationId"])


async def test_the_operator_matrix(surface: Surface) -> None:
    """Every operator endpoint x every caller: anonymous and a wrong operator token 401, a user's token
    403 (on /flows*: 200 with its own flows, 404 for another login's), the operator's token 200."""
    seen: dict[tuple[str, str], int] = {}
    for name, (method, template, _) in MATRIX.items():
        path = template.format(letter=surface.letter, flow=surface.flow)
        # the operator last: its redrive takes the letter, which must still be there for it
        for caller in CALLERS:
            r = await surface.client.request(method, path, headers=surface.headers[caller])
            seen[name, caller] = r.status_code
            if r.status_code >= 400:
                assert r.headers["content-type"] == "application/problem+json", (name, caller)
            if r.status_code == 401:
                assert r.headers["www-authenticate"].startswith("Bearer"), (name, caller)
    wanted = {(name, caller): m[2][caller] for name, m in MATRIX.items() for caller in CALLERS}
    assert seen == wanted
    assert len(seen) == 36


async def test_only_the_operator_redrives_and_the_others_change_nothing(surface: Surface) -> None:
    path = f"/admin/deadletters/{surface.letter}/redrive"
    for caller in CALLERS[:3]:
        assert (await surface.client.post(path, headers=surface.headers[caller])).status_code in (401, 403)
    admin = surface.headers["operator token"]
    [letter] = (await surface.client.get("/admin/deadletters", headers=admin)).json()["deadLetters"]
    assert letter["redrivenAt"] is None
    assert (await surface.client.post(path, headers=admin)).status_code == 200


async def test_the_operator_token_opens_no_users_door(surface: Surface) -> None:
    r = await surface.client.get(
        "/account/", params={"login": "anyone"}, headers=surface.headers["operator token"]
    )
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", OPEN)
async def test_health_the_page_and_the_documents_stay_open(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200, path


async def test_redoc_is_off_not_a_blank_page_from_a_cdn(client: httpx.AsyncClient) -> None:
    r = await client.get("/redoc")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.slow
def test_a_stranger_gets_401_from_every_operator_endpoint_of_a_real_server(tmp_path: Path) -> None:
    with Server(tmp_path / "data") as server:
        for method, template, _ in MATRIX.values():
            path = template.format(letter="x", flow="x")
            r = httpx.request(method, server.base_url + path, timeout=5)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
        outbox = httpx.get(server.base_url + "/admin/outbox", headers=operator_at(server.data_dir), timeout=5)
        assert outbox.status_code == 200


async def test_auth_mode_off_opens_the_operator_endpoints_too(settings: Settings) -> None:
    async with running(create_app(settings.with_(auth_mode="off"))) as client:
        for method, template, _ in MATRIX.values():
            if template == "/flows/stream":
                continue  # endless without a token's expiry: the matrix covers it
            path = template.format(letter="nope", flow="nope")
            r = await client.request(method, path)
            assert r.status_code in (200, 404), (path, r.text)


def test_the_token_is_generated_once_into_the_data_dir_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = operator_token(settings)
    path = tmp_path / "data" / "operator-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and path.read_text() == first
    assert operator_token(settings) == first
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_operator_token_setting_wins_and_no_file_is_made(tmp_path: Path) -> None:
    given = "o" * 32
    settings = Settings(data_dir=tmp_path, operator_token=given)
    auth = Auth(settings)
    assert auth.is_operator(f"Bearer {given}") and auth.is_operator(f"bearer  {given} ")
    for wrong in ("", "Bearer", f"Bearer {given[:-1]}", f"Bearer {given}x", f"Basic {given}", given):
        assert not auth.is_operator(wrong), wrong
    assert not auth.is_operator("Bearer \u00e9" + given[1:])  # latin-1 from a header: no TypeError
    assert not (tmp_path / "operator-token").exists()


@pytest.mark.parametrize("value", ["short", "o" * 31, "o" * 31 + " ", "ö" * 40])
def test_an_operator_token_too_short_or_not_header_safe_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="OPERATOR_TOKEN"):
        Settings.load(environ={"OPERATOR_TOKEN": value}, env_file=None, secrets_dir=None)


@pytest.mark.slow
def test_the_generated_token_survives_a_restart_and_the_cli_and_the_log_show_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"LOG_LEVEL": "info", "LOG_FORMAT": "console", "OPERATOR_TOKEN": ""}
    with Server(data, env=env) as first:
        token = (data / "operator-token").read_text()
        assert httpx.get(first.base_url + "/metrics", headers=bearer(token), timeout=5).status_code == 200
    assert f"operator page: {first.base_url}/?operator={token}" in first.log()
    with Server(data, env=env) as second:
        assert (data / "operator-token").read_text() == token
        assert httpx.get(second.base_url + "/metrics", headers=bearer(token), timeout=5).status_code == 200
    printed = subprocess.run(
        [sys.executable, "-m", "app", "operator-token", "--data-dir", str(data)],
        env={**os.environ, "OPERATOR_TOKEN": ""},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert printed.stdout == token + "\n"


def test_a_token_from_the_setting_is_not_written_to_the_log(tmp_path: Path) -> None:
    from app.__main__ import _operator_page

    given = secrets.token_urlsafe(32)
    shown = _operator_page(Settings(data_dir=tmp_path, operator_token=given, host="0.0.0.0"))
    assert shown == "http://127.0.0.1:8000/?operator=<OPERATOR_TOKEN>"
    generated = _operator_page(Settings(data_dir=tmp_path, port=8011))
    assert generated == f"http://127.0.0.1:8011/?operator={(tmp_path / 'operator-token').read_text()}"


def test_openapi_declares_the_user_and_the_operator_schemes(settings: Settings) -> None:
    doc = create_app(settings).openapi()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["userToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A login's token, from POST /person/login.",
    }
    assert (schemes["operatorToken"]["type"], schemes["operatorToken"]["scheme"]) == ("http", "bearer")
    security = {
        f"{method.upper()} {path}": [name for requirement in op.get("security", []) for name in requirement]
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    operator_only = {k for k, v in security.items() if v == ["operatorToken"]}
    either = {k for k, v in security.items() if v == ["userToken", "operatorToken"]}
    users = {k for k, v in security.items() if v == ["userToken"]}
    open_ = {k for k, v in security.items() if not v}
    assert operator_only == {
        "GET /admin/outbox",
        "GET /admin/deadletters",
        "POST /admin/deadletters/{letter_id}/redrive",
        "GET /admin/invariants",
        "GET /admin/chaos",
        "PUT /admin/chaos",
        "GET /admin/modules",
        "POST /admin/modules/{name}/pause",
        "POST /admin/modules/{name}/resume",
        "GET /metrics",
    }
    assert either == {
        "GET /flows",
        "GET /flows/{correlation_id}",
        "GET /flows/scenario",
        "GET /flows/stream",
        "GET /flows/chaos",
    }
    assert open_ == {
        "POST /person/register",
        "POST /person/login",
        "GET /health/live",
        "GET /health/ready",
        "GET /asyncapi.yaml",
    }
    assert len(users) == 7 and all(
        k.split()[1].startswith(("/person", "/account", "/order", "/notice")) for k in users
    )
    for name in operator_only | either | users:
        method, path = name.split()
        assert "401" in doc["paths"][path][method.lower()]["responses"], name
    for name in operator_only:
        method, path = name.split()
        assert "403" in doc["paths"][path][method.lower()]["responses"], name


@pytest.mark.slow
async def test_the_access_log_never_carries_the_operators_token(tmp_path: Path) -> None:
    env = {"LOG_LEVEL": "info", "ACCESS_LOG": "1", "OPERATOR_TOKEN": ""}
    with Server(tmp_path / "data", env=env) as server:
        token = (server.data_dir / "operator-token").read_text()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as c:
            assert (await c.get(f"/?operator={token}&x=1")).status_code == 200
            assert (await c.get(f"/?a=b&operator={token}")).status_code == 200
        # the access line is written after the answer
        await until(lambda: server.log().count("operator=(hidden)") == 2)
    text = server.log()
    assert "operator page:" in text  # the start-up line shows it once, on purpose (a generated token)
    assert text.count(token) == 1
