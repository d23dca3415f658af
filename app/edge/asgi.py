"""The ASGI stack in front of the routes: FastAPI with only the layers this service uses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp


class Service(FastAPI):
    """FastAPI, minus two layers every request paid for and this app never uses: the native
    telemetry's exception recorder (app/observe/tracing.py makes the spans, when tracing is on) and
    FastAPI's own body limit (the edge middleware's answers 413 as problem+json; FastAPI's would not).
    Its native telemetry is off: with opentelemetry installed it looked the tracer provider up on every
    request (~3 % of the server's CPU under load, py-spy)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(telemetry={"tracing": False, "metrics": False, "logs": False}, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        # innermost first: FastAPI's routes need the exit stack (it closes uploaded files)
        app: ASGIApp = AsyncExitStackMiddleware(self.router)
        app = ExceptionMiddleware(app, handlers=handlers, debug=self.debug)
        for middleware in reversed(self.user_middleware):
            app = middleware.cls(app, *middleware.args, **middleware.kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)
