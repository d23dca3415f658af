"""The fast lane: the hot routes' ordinary requests answered in plain ASGI, the rest by FastAPI.

A createOrder through FastAPI's request machinery (routing through included routers, dependency
solving, request and response models) cost ~0.4 ms of CPU, four times a bare request; the reads it
makes cheap (``GET /account/``, ``GET /notice/notices/``) cost the same. A fast route is a small
function of a :class:`Call` beside its FastAPI route in the module's ``api.py``, sharing that route's
core (the same schemas, service calls and replies). It answers what it recognises as an ordinary
request, or returns None and the request goes to FastAPI untouched (its body replayed), so every
unusual request - a body that fails validation, a duplicated parameter, an odd content type - gets
FastAPI's one canonical answer. A Problem it raises is answered as FastAPI's handler would.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.problems import Problem, problem_response

M = TypeVar("M", bound=BaseModel)
_JSON = re.compile(rb"^application/json\s*(;\s*charset=utf-8)?$", re.IGNORECASE)


class Call:
    """One request, as a fast route sees it. Where FastAPI would have something to say (a header or
    parameter given twice, a body it would refuse), an accessor gives up and FastAPI answers."""

    __slots__ = ("_headers", "_query", "body", "scope", "state")

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.scope, self.body = scope, body
        self.state: Any = scope["app"].state
        self._headers: dict[bytes, list[bytes]] | None = None
        self._query: dict[str, list[str]] | None = None

    def header(self, name: bytes) -> bytes | None:
        """The header's value (``name`` lower case), None when absent."""
        if self._headers is None:
            self._headers = {}
            for key, value in self.scope["headers"]:
                self._headers.setdefault(key, []).append(value)
        return _one(self._headers.get(name))

    def query(self, name: str) -> str | None:
        """The query parameter's value, None when absent."""
        if self._query is None:
            self._query = {}
            for key, value in parse_qsl(self.scope["query_string"].decode("latin-1"), keep_blank_values=True):
                self._query.setdefault(key, []).append(value)
        return _one(self._query.get(name))

    def json(self, model: type[M]) -> M | None:
        """The body as ``model``, or None for anything FastAPI would refuse or read otherwise."""
        content_type = self.header(b"content-type")
        if content_type is None or not _JSON.match(content_type):
            return None
        try:
            return model.model_validate_json(self.body)
        except ValidationError:
            return None

    def login(self) -> str | None:
        """The token's login (None when authentication is off); raises Unauthorized like the route."""
        header = self.header(b"authorization")
        login: str | None = self.state.auth.bearer((header or b"").decode("latin-1"))
        return login


class GiveUp(Exception):
    """The request is not an ordinary one: FastAPI answers it."""


T = TypeVar("T")


def _one(values: list[T] | None) -> T | None:
    if not values:
        return None
    if len(values) > 1:
        raise GiveUp  # given twice: which one counts is FastAPI's to say
    return values[0]


FastRoute = Callable[[Call], Awaitable[Response | None]]


class FastLane:
    """ASGI: requests for a fast route try it first; every other request goes straight to ``app``."""

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], tuple[FastRoute, BaseRoute]]) -> None:
        self.app, self.routes = app, dict(routes)
        # requests of a fast route answered in the lane, and handed on to FastAPI
        self.answered = self.handed_on = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = None
        if scope["type"] == "http":
            fast = self.routes.get((scope["method"], scope["path"]))
        if fast is None:
            await self.app(scope, receive, send)
            return
        route, api_route = fast
        body = await _read_body(receive)
        response: Response | None
        try:
            response = await route(Call(scope, body))
        except GiveUp:
            response = None
        except Problem as exc:
            response = problem_response(
                exc.status,
                exc.slug,
                exc.title,
                exc.detail,
                instance=scope["path"],
                headers=exc.headers,
                extra=exc.extra,
            )
        if response is None:
            self.handed_on += 1
            await self.app(scope, _replay(body, receive), send)
            return
        self.answered += 1
        scope["route"] = api_route  # the template metrics and flows label the exchange with
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
