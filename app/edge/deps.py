"""FastAPI dependencies every module's routes share: its database, the settings, the Idempotency-Key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from app.config import Settings
from app.storage.database import Database


def database(module: str) -> Callable[[Request], Awaitable[Database]]:
    """The dependency that hands a route its own module's database (and no other)."""

    async def dependency(request: Request) -> Database:
        db: Database = request.app.state.dbs[module]
        return db

    dependency.__name__ = f"{module}_database"
    return dependency


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(_settings)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
