"""The app in this process: its lifespan started, an httpx client speaking to it over ASGI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI

from app.main import create_app
from tests.support.settings import memory_settings


@contextlib.asynccontextmanager
async def running(app: FastAPI, *, timeout: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``app`` (databases, bus, relays) and yield a client for it; stop it on exit.
    ``client.app`` is the app, for tests that look inside (``app.state.system``)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=timeout) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@contextlib.asynccontextmanager
async def shared_app(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The whole system in memory, for a test module to share (a module-scoped fixture whose tests
    run in the module's loop) when its tests cannot interfere: each signs up logins of its own. A test
    then costs its requests, not an app start-up (~60 ms on files, measured here). Every request comes
    from the one ASGI address, so the per-address login limit is lifted; tests/security/test_authn.py
    tests that limit on an app of its own."""
    async with running(create_app(memory_settings(login_rate_per_address=1_000_000, **changes))) as c:
        yield c
