"""The front of the distributed topology: Debian's nginx with the config app/ops/nginx.py writes, in
front of echo servers in this process and of a real ``python -m app``. Skipped, with the command to
install it, where nginx is missing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
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

from app.ops.nginx import Upstream
from tests.support.front import front, need_nginx
from tests.support.poll import until
from tests.support.server import Server, free_port

pytestmark = pytest.mark.usefixtures("nginx")


@pytest.fixture(scope="module")
def nginx() -> str:
    return need_nginx()


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[int]:
    """Run ``app`` under uvicorn on a free loopback port in this event loop; yield the port."""
    port = free_port()
    # proxy_headers=False: the echo shows the forwarded headers as nginx sent them
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
        yield port
    finally:
        server.should_exit = True
        await task


def echo_app(name: str, release: asyncio.Event) -> Starlette:
    """Answers with who it is and what it received; ``/slow`` holds the request until ``release``."""

    async def echo(request: Request) -> Response:
        body = await request.body()
        seen = {
            "server": name,
            "method": request.method,
            "rawPath": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in request.headers.raw},
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

    return Starlette(
        routes=[
            Route("/health/ready", ready),
            Route("/order/slow", slow),
            Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    )


@pytest.fixture
async def echoes() -> AsyncIterator[dict[str, int]]:
    """Two echo servers: ``orders`` and ``console``."""
    release = asyncio.Event()
    async with (
        serving(echo_app("orders", release)) as orders,
        serving(echo_app("console", release)) as console,
    ):
        yield {"orders": orders, "console": console}
        release.set()


def layout(echoes: dict[str, int], *, orders: tuple[int, ...] | None = None) -> list[Upstream]:
    return [
        Upstream("orders", orders or (echoes["orders"],), ("/order",)),
        Upstream("console", (echoes["console"],), ()),
    ]


async def test_the_front_is_nginx_and_answers_its_own_liveness(tmp_path: Path) -> None:
    nobody = free_port()  # no upstream runs at all
    with front(
        [Upstream("orders", (nobody,), ("/order",)), Upstream("console", (nobody,), ())], tmp_path
    ) as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            live = await c.get("/health/live")
            assert (live.status_code, live.json()) == (200, {"status": "ok"})
            assert live.headers["server"] == "nginx"  # server_tokens off: no version
            ready = await c.get("/health/ready")
            assert ready.status_code == 503
            assert ready.headers["content-type"] == "application/problem+json"
            assert ready.json()["title"] == "Not ready"


async def test_a_request_passes_through_whole_with_the_forwarded_headers(
    echoes: dict[str, int], tmp_path: Path
) -> None:
    body = bytes(range(256)) * 256  # 64 KiB
    with front(layout(echoes), tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            r = await c.put(
                "/order/a%2Fb/x?q=1&q=2",
                content=body,
                headers={"X-Forwarded-For": "203.0.113.7", "X-Custom": "kept"},
            )
    assert r.status_code == 201
    seen = r.json()
    assert (seen["server"], seen["method"], seen["rawPath"], seen["query"]) == (
        "orders",
        "PUT",
        "/order/a%2Fb/x",
        "q=1&q=2",
    )
    assert seen["bodySha256"] == hashlib.sha256(body).hexdigest()
    headers = seen["headers"]
    # the peer's address replaces what the client claimed: a client cannot choose the one counted
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == headers["host"] == base.removeprefix("http://")
    assert headers["x-custom"] == "kept"
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert r.headers["server"] == "nginx"


async def test_prefixes_match_whole_segments_and_the_rest_goes_to_the_console(
    echoes: dict[str, int], tmp_path: Path
) -> None:
    with front(layout(echoes), tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            served = {
                p: (await c.get(p)).json()["server"] for p in ("/order", "/order/x", "/orders", "/docs", "/")
            }
    assert served == {
        "/order": "orders",
        "/order/x": "orders",
        "/orders": "console",
        "/docs": "console",
        "/": "console",
    }


async def test_a_refused_replica_is_passed_over_and_none_left_is_a_502_problem(
    echoes: dict[str, int], tmp_path: Path
) -> None:
    dead = free_port()
    with front(layout(echoes, orders=(dead, echoes["orders"])), tmp_path / "one") as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            replies = [await c.post("/order/createOrder", json={"n": i}) for i in range(6)]
    assert {r.status_code for r in replies} == {201}, [r.text for r in replies]
    with front(layout(echoes, orders=(dead,)), tmp_path / "none") as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            r = await c.post("/order/createOrder", json={})
    assert r.status_code == 502 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (problem["status"], problem["title"]) == (502, "Bad gateway")
    assert problem["type"].endswith(":bad-gateway")


async def test_an_upstream_slower_than_the_read_timeout_is_a_504_problem(
    echoes: dict[str, int], tmp_path: Path
) -> None:
    with front(layout(echoes), tmp_path, read_timeout=1) as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as c:
            r = await c.get("/order/slow")
    assert r.status_code == 504 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Gateway timeout"


async def test_ready_only_when_every_upstream_is(echoes: dict[str, int], tmp_path: Path) -> None:
    with front(layout(echoes), tmp_path / "all") as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            r = await c.get("/health/ready")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})
    with front(layout(echoes, orders=(free_port(),)), tmp_path / "one-down") as base:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            r = await c.get("/health/ready")
    assert r.status_code == 503 and r.json()["type"].endswith(":not-ready")


@pytest.mark.slow
async def test_the_login_rate_limit_counts_each_client_address_through_nginx(tmp_path: Path) -> None:
    """Clients on 127.0.0.2 and 127.0.0.3 (loopback, on Linux any 127/8 address is this machine)
    reach one ``python -m app`` through nginx: the limit per address holds one back, not both; a
    client that sends X-Forwarded-For of its own does not escape it."""
    limit = 3
    env = {"LOGIN_RATE_PER_ADDRESS": str(limit), "AUTH_HASH_TIME_COST": "1", "AUTH_HASH_MEMORY_KIB": "64"}
    with Server(tmp_path / "app", env=env) as app:
        upstreams = [Upstream("person", (app.port,), ("/person",)), Upstream("console", (app.port,), ())]
        with front(upstreams, tmp_path / "front") as base:

            async def attempts(address: str, n: int, **headers: str) -> list[int]:
                transport = httpx.AsyncHTTPTransport(local_address=address)
                async with httpx.AsyncClient(base_url=base, transport=transport, trust_env=False) as c:
                    return [
                        (
                            await c.post(
                                "/person/login",
                                json={"login": f"nobody{i}", "password": "x" * 12},
                                headers=headers,
                            )
                        ).status_code
                        for i in range(n)
                    ]

            assert await attempts("127.0.0.2", limit + 1) == [401] * limit + [429]
            assert await attempts("127.0.0.2", 1, **{"X-Forwarded-For": "198.51.100.9"}) == [429]
            assert await attempts("127.0.0.3", 1) == [401]
