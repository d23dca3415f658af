"""app/ops/gateway.py in front of an echo server in this process and of real ``python -m app`` processes,
one module each (separate processes cannot share the memory bus, so no event crosses them here)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from app.ops.gateway import ProxyRoute, create_gateway, match, parse
from tests.support.auth import sign_up
from tests.support.poll import until
from tests.support.server import Server, free_port


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in this event loop; yield its base URL."""
    port = free_port()
    # proxy_headers=False as in app.ops.gateway.main: the peer address is the client's, not X-Forwarded-For's
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), timeout=10)
    if task.done():
        task.result()
        raise RuntimeError(f"uvicorn on {port} stopped before it started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def echo_app(release: asyncio.Event) -> Starlette:
    """Answers with what it received; ``/slow`` holds the request until ``release`` is set."""

    async def echo(request: Request) -> Response:
        body = b"".join([chunk async for chunk in request.stream()])
        seen = {
            "method": request.method,
            "rawPath": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in request.headers.raw],
            "bodyLength": len(body),
            "bodySha256": hashlib.sha256(body).hexdigest(),
        }
        response = Response(orjson.dumps(seen), status_code=201, media_type="application/json")
        response.raw_headers += [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        return response

    async def slow(request: Request) -> Response:
        await release.wait()
        return Response(b"late")

    async def ready(request: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(
        routes=[
            Route("/health/ready", ready),
            Route("/echo/slow", slow),
            Route("/{path:path}", echo, methods=methods),
        ]
    )


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    release = asyncio.Event()
    async with serving(echo_app(release)) as url:
        yield url
        release.set()


def test_longest_whole_segment_prefix_wins() -> None:
    routes = [ProxyRoute.parse(r) for r in ("/=http://a:1", "/order=http://b:2/", "/order/orders=http://c:3")]
    assert match(routes, "/order/createOrder") == ProxyRoute("/order", "http://b:2")
    assert match(routes, "/order") == ProxyRoute("/order", "http://b:2")
    assert match(routes, "/order/orders/42") == ProxyRoute("/order/orders", "http://c:3")
    assert match(routes, "/orders") == ProxyRoute("/", "http://a:1")
    assert match(routes[1:], "/person/register") is None


def test_command_line_takes_repeated_routes() -> None:
    args = parse(
        ["--port", "8080", "--route", "/person=http://127.0.0.1:8101", "--route", "/account=http://h:2"]
    )
    assert args.route == [
        ProxyRoute("/person", "http://127.0.0.1:8101"),
        ProxyRoute("/account", "http://h:2"),
    ]
    with pytest.raises(SystemExit):
        parse(["--route", "person:8101"])


async def test_request_and_response_pass_through_whole(echo: str) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: more than one chunk each way
    gateway = create_gateway([ProxyRoute("/echo", echo)])
    async with serving(gateway) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.put(
            "/echo/a%20b/c",
            params={"login": "x y", "n": "1"},
            content=body,
            headers={"X-Correlation-ID": "c-1", "X-Forwarded-For": "203.0.113.7", "Connection": "keep-alive"},
        )
    assert r.status_code == 201
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert len(r.headers.get_list("date")) == 1 and len(r.headers.get_list("server")) == 1
    seen = r.json()
    assert (seen["method"], seen["rawPath"], seen["query"]) == ("PUT", "/echo/a%20b/c", "login=x+y&n=1")
    assert (seen["bodyLength"], seen["bodySha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    headers = dict(seen["headers"])
    assert headers["x-correlation-id"] == "c-1"
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == base.removeprefix("http://")
    assert headers["host"] == echo.removeprefix("http://")
    # nothing added but the X-Forwarded-* trio, nothing lost but the hop-by-hop Connection
    assert set(headers) == set(r.request.headers) - {"connection"} | {"x-forwarded-proto", "x-forwarded-host"}


async def test_a_path_no_route_serves_is_a_404_problem(echo: str) -> None:
    async with (
        serving(create_gateway([ProxyRoute("/echo", echo)])) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        r = await client.get("/person/persons/x")
        live = await client.get("/health/live")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "no route serves /person/persons/x"
    assert live.json() == {"status": "ok"}


async def test_an_upstream_too_slow_gives_a_504_problem(echo: str) -> None:
    async with (
        serving(create_gateway([ProxyRoute("/echo", echo)], timeout=0.3)) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        r = await client.get("/echo/slow")
    assert r.status_code == 504 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (problem["title"], problem["status"], problem["instance"]) == (
        "Gateway timeout",
        504,
        "/echo/slow",
    )
    assert problem["type"] == "urn:eventcollab:problem:gateway-timeout" and "0.3s" in problem["detail"]


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[dict[str, Server]]:
    """person and billing, each alone in its own ``python -m app`` process, sharing one AUTH_SECRET so
    billing accepts the tokens person signs."""
    env = {"AUTH_SECRET": secrets.token_urlsafe(32)}
    servers = {m: Server(tmp_path / m, env={**env, "MODULES": m}) for m in ("person", "billing")}
    try:
        # side by side: each start is ~1 s of imports and migrations, mostly CPU (measured here)
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(Server.start, servers.values()))
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def seed_routes(servers: dict[str, Server]) -> list[ProxyRoute]:
    return [
        ProxyRoute("/person", servers["person"].base_url),
        ProxyRoute("/account", servers["billing"].base_url),
    ]


@pytest.mark.slow
@pytest.mark.subprocess
async def test_seed_paths_reach_the_module_process_that_serves_them(modules: dict[str, Server]) -> None:
    async with (
        serving(create_gateway(seed_routes(modules))) as base,
        httpx.AsyncClient(base_url=base) as client,
        httpx.AsyncClient(base_url=modules["billing"].base_url) as billing,
    ):
        login, auth = await sign_up(client, prefix="gw")
        r = await client.get(f"/person/persons/{login}", headers=auth)
        assert (r.status_code, r.json()["login"]) == (200, login)
        # no bus between the processes: billing never heard of the person, and says so itself
        via, direct = (
            await client.get("/account/", params={"login": login}, headers=auth),
            await billing.get("/account/", params={"login": login}, headers=auth),
        )
        assert (via.status_code, via.json()) == (direct.status_code, direct.json())
        assert via.status_code == 404, via.text  # person's token was good at billing: not a 401
        r = await client.get("/account/", headers=auth)
        assert r.json()["detail"] == "query parameter 'login' is required"
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {s.base_url: True for s in modules.values()}


@pytest.mark.slow
@pytest.mark.subprocess
async def test_a_stopped_upstream_gives_a_502_problem_and_an_unready_gateway(
    modules: dict[str, Server],
) -> None:
    async with (
        serving(create_gateway(seed_routes(modules))) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        modules["billing"].stop()
        r = await client.get("/account/", params={"login": "nobody"})
        assert r.status_code == 502 and r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert (problem["title"], problem["status"]) == ("Bad gateway", 502)
        assert (
            problem["type"] == "urn:eventcollab:problem:bad-gateway"
            and modules["billing"].base_url in problem["detail"]
        )
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {
            modules["person"].base_url: True,
            modules["billing"].base_url: False,
        }
        # person still answers itself (a profile needs its owner's token now, so sign one up)
        login, auth = await sign_up(client, prefix="gw")
        r = await client.get(f"/person/persons/{login}", headers=auth)
        assert (r.status_code, r.json()["login"]) == (200, login)
