"""A small reverse proxy: one base URL for every seed path when each module runs as its own process.

``python -m app.ops.gateway --port 8080 --route /person=http://127.0.0.1:8101 --route /account=http://127.0.0.1:8102``

Prefix routing on whole path segments (``/order`` serves ``/order`` and ``/order/x``, not ``/orders``),
longest prefix first, like an Ingress ``Prefix`` path. Method, path, query, headers and status pass
through; bodies stream both ways; ``X-Forwarded-For/-Proto/-Host`` are added. An upstream that refuses
the connection or breaks it gives 502, one that does not answer within ``--timeout`` gives 504, both as
problem+json. ``/health/live`` is the gateway's own; ``/health/ready`` is 200 only when every upstream's
``/health/ready`` is.

Why this and not nginx: nothing to install, one command, the same on every machine that has the venv.
In Kubernetes the Ingress does this job (deploy/helm/eventcollab/templates/ingress.yaml) and this file
is not deployed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app.problems import problem_response

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# RFC 9110 §7.6.1 hop-by-hop fields, and Host: httpx sets it from the upstream URL
# fmt: off
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "host",
})
# fmt: on
OWN_RESPONSE_FIELDS = {"date", "server"}  # uvicorn adds its own; two of each confuse clients


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    prefix: str
    upstream: str

    @classmethod
    def parse(cls, text: str) -> ProxyRoute:
        """``/person=http://127.0.0.1:8101`` → a route; argparse's ``type=``."""
        prefix, sep, upstream = text.partition("=")
        if not sep or not prefix.startswith("/") or not upstream.startswith(("http://", "https://")):
            raise argparse.ArgumentTypeError(f"expected /prefix=http://host:port, got {text!r}")
        return cls(prefix.rstrip("/") or "/", upstream.rstrip("/"))

    def serves(self, path: str) -> bool:
        return self.prefix == "/" or path == self.prefix or path.startswith(self.prefix + "/")


def match(routes: Sequence[ProxyRoute], path: str) -> ProxyRoute | None:
    """The route with the longest prefix that serves ``path``, or None."""
    return max((r for r in routes if r.serves(path)), key=lambda r: len(r.prefix), default=None)


def replicas(routes: Sequence[ProxyRoute], path: str, turn: int) -> list[ProxyRoute]:
    """Every upstream of the longest matching prefix (one ``--route`` each), rotated by ``turn``:
    round robin over replicas, the others next in line if the first refuses the connection."""
    best = match(routes, path)
    if best is None:
        return []
    same = [r for r in routes if r.prefix == best.prefix]
    k = turn % len(same)
    return same[k:] + same[:k]


def _forward_headers(request: Request) -> list[tuple[bytes, bytes]]:
    named = {n.strip().lower() for n in request.headers.get("connection", "").split(",")}
    drop = HOP_BY_HOP | named | {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in drop]
    client = request.client.host if request.client else "unknown"
    prior = request.headers.get("x-forwarded-for")
    headers += [
        (b"x-forwarded-for", (f"{prior}, {client}" if prior else client).encode("latin-1")),
        (
            b"x-forwarded-proto",
            request.headers.get("x-forwarded-proto", request.url.scheme).encode("latin-1"),
        ),
        (b"x-forwarded-host", request.headers.get("x-forwarded-host", request.url.netloc).encode("latin-1")),
    ]
    return headers


def create_gateway(routes: Sequence[ProxyRoute], *, timeout: float = 60.0) -> Starlette:
    client = httpx.AsyncClient(
        # trust_env=False: an HTTP(S)_PROXY in the environment must not capture loopback upstreams
        trust_env=False,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )

    turns = itertools.count()

    async def proxy(request: Request) -> Response:
        path = request.url.path
        candidates = replicas(routes, path, next(turns))
        if not candidates:
            return problem_response(404, "not-found", "Not found", f"no route serves {path}", instance=path)
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        body = request.stream() if has_body else None
        for i, route in enumerate(candidates):
            url = route.upstream + request.scope["raw_path"].decode("latin-1")
            if request.scope["query_string"]:
                url += "?" + request.scope["query_string"].decode("latin-1")
            # httpx.Request, not client.build_request: the client's default headers (Accept-Encoding,
            # …) would change what the upstream answers
            upstream_request = httpx.Request(
                request.method, url, headers=_forward_headers(request), content=body
            )
            try:
                upstream = await client.send(upstream_request, stream=True)
                break
            except httpx.ConnectError:
                # refused before a byte of the body was read: the next replica may take it
                if i + 1 < len(candidates):
                    continue
                detail = f"no replica of {route.prefix} is reachable (last tried {route.upstream})"
                return problem_response(502, "bad-gateway", "Bad gateway", detail, instance=path)
            except httpx.TimeoutException:
                detail = f"{route.upstream} did not answer {request.method} {path} within {timeout:g}s"
                return problem_response(504, "gateway-timeout", "Gateway timeout", detail, instance=path)
            except httpx.TransportError as e:
                detail = f"{route.upstream} is unreachable: {type(e).__name__}: {e}"
                return problem_response(502, "bad-gateway", "Bad gateway", detail, instance=path)
        response = StreamingResponse(
            upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
        )
        drop = HOP_BY_HOP | OWN_RESPONSE_FIELDS
        response.raw_headers = [
            (k, v) for k, v in upstream.headers.raw if k.decode("latin-1").lower() not in drop
        ]
        return response

    async def live(request: Request) -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    async def ready(request: Request) -> Response:
        upstreams = sorted({r.upstream for r in routes})
        answers = await asyncio.gather(*(_ready(client, u) for u in upstreams))
        checks = dict(zip(upstreams, answers, strict=True))
        if all(answers):
            return Response(
                orjson.dumps({"status": "ready", "checks": checks}), media_type="application/json"
            )
        down = ", ".join(u for u, ok in checks.items() if not ok)
        return problem_response(503, "not-ready", "Not ready", f"down: {down}", extra={"checks": checks})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client:
            yield

    return Starlette(
        routes=[
            Route("/health/live", live, methods=["GET"]),
            Route("/health/ready", ready, methods=["GET"]),
            Route("/{path:path}", proxy, methods=METHODS),
        ],
        lifespan=lifespan,
    )


async def _ready(client: httpx.AsyncClient, upstream: str) -> bool:
    try:
        return (await client.get(upstream + "/health/ready", timeout=2.0)).status_code == 200
    except httpx.HTTPError:
        return False


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m app.ops.gateway",
        description="One base URL for modules that run as separate processes.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--route", type=ProxyRoute.parse, action="append", required=True, help="/prefix=http://host:port"
    )
    # createOrder holds its request up to ORDER_REPLY_TIMEOUT (5 s by default) before its 202
    p.add_argument("--timeout", type=float, default=60.0, help="seconds an upstream may take (default 60)")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse(argv)
    app = create_gateway(args.route, timeout=args.timeout)
    # proxy_headers=False: uvicorn would otherwise take the client address from X-Forwarded-For, and the
    # gateway would forward the claimed address instead of appending the peer it sees
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, proxy_headers=False
    )


if __name__ == "__main__":
    main()
