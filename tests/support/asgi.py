"""The app in this process: its lifespan started, an httpx client speaking to it over ASGI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI


@contextlib.asynccontextmanager
async def running(app: FastAPI, *, timeout: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``app`` (databases, bus, relays) and yield a client for it; stop it on exit.
    ``client.app`` is the app, for tests that look inside (``app.state.system``)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=timeout) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
