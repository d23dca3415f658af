"""ASGI middleware: body size limit and correlation ids (plain ASGI: cheaper than BaseHTTPMiddleware)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.bus import new_id
from app.observe.context import correlation_id, request_login
from app.observe.observers import HttpExchange, Observers
from app.problems import problem_response

HEADER = b"x-correlation-id"


class _TooLarge(BaseException):
    """Not an Exception: FastAPI turns any Exception raised while it reads a body into a 400."""


class EdgeMiddleware:
    """Refuses bodies over ``max_body`` bytes with 413 (declared or streamed) and gives every request a
    correlation id (the client's ``X-Correlation-ID`` if sane), echoed on the response and carried by
    every event the request causes."""

    def __init__(self, app: ASGIApp, max_body: int, observers: Observers | None = None) -> None:
        self.app, self.max_body, self.observers = app, max_body, observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = ""
        declared = 0
        for name, value in scope["headers"]:
            if name == HEADER and 0 < len(value) <= 64 and value.isascii() and value.decode().isprintable():
                cid = value.decode()
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
        cid = cid or new_id()
        if declared > self.max_body:
            await self._too_large(scope, receive, send)
            return
        token = correlation_id.set(cid)
        for_login = request_login.set("")
        started = False
        status = 500
        seen = 0
        began, clock = time.time(), time.perf_counter()

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal started
            nonlocal status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, cid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        except _TooLarge:
            if not started:
                status = 413
                await self._too_large(scope, receive, send)
        finally:
            correlation_id.reset(token)
            login = request_login.get()
            request_login.reset(for_login)
            if self.observers is not None:
                route = getattr(scope.get("route"), "path", "")
                took = time.perf_counter() - clock
                self.observers.on_http(
                    HttpExchange(scope["method"], scope["path"], status, cid, began, took, route, login)
                )

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "content-too-large",
            "Content too large",
            f"request bodies are limited to {self.max_body} bytes",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)
