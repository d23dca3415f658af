"""FastAPI dependencies every module's routes share: its database, the settings, the Idempotency-Key,
one value per query parameter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

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
# enforced by app/storage/idempotency.py check_key, which the fast lane calls too: the document says it,
# Header() does not check it (its 400 would read differently from the fast lane's)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1-255 printable ASCII characters; a retry with the same key and body replays the "
        "first answer",
        json_schema_extra={"minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    ),
]


async def one_value_each(request: Request) -> None:
    """A query parameter of the route given twice is 400 (``invalid-parameter``), on every route (app/main.py
    installs it): the document says one value, and which of two counts would be the framework's pick.
    The fast lane gives such a request up to FastAPI, so it is refused there too."""
    items = request.query_params.multi_items()
    if len(items) < 2:
        return
    keys = [key for key, _ in items]
    route = request.scope.get("route")
    if len(set(keys)) == len(keys) or not isinstance(route, APIRoute):
        return
    names = _QUERY_NAMES.get(id(route))
    if names is None:  # once per route: routes live as long as the app
        names = _QUERY_NAMES[id(route)] = _query_names(route.dependant)
    twice = sorted({k for k in keys if keys.count(k) > 1} & names)
    if twice:
        name = twice[0]
        error = {"type": "too_many", "loc": ("query", name), "msg": "given more than once", "input": None}
        raise RequestValidationError([{**error, "input": request.query_params.getlist(name)}])


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)
