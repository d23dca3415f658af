"""The kinds of value settings take, and where ``Settings.load`` reads them from: kept apart from the
model in ``app/config.py`` so that file holds the settings themselves. Imports nothing of the app but
the module names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import BaseSettings, EnvSettingsSource

MODULES: tuple[str, ...] = ("person", "billing", "orders", "notifications")
# Docker and Kubernetes secrets: a file named after a setting (auth_secret holds AUTH_SECRET)
SECRETS_DIR = Path("/run/secrets")
DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
BUS_SCHEMES = ("memory://", "nats://", "tls://", "amqp://", "amqps://")


def replicas_of(text: str) -> dict[str, int]:
    """``orders=3,billing=2`` -> ``{"orders": 3, "billing": 2}``; ValueError saying what is wrong."""
    out: dict[str, int] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, count = item.partition("=")
        if not sep or name.strip() not in MODULES or not count.strip().isdigit():
            raise ValueError(f"{item!r} is not module=N with a module from {', '.join(MODULES)}")
        if not 1 <= int(count) <= 8:
            raise ValueError(f"{item!r}: from 1 to 8 processes")
        out[name.strip()] = int(count)
    return out


def accepting(text: str) -> Any:
    # what a string setting takes, for the docs table and the error message (types say the rest)
    return {"accepts": text}


def none_if_empty(value: object) -> object:
    return None if value == "" else value


def _database_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(DATABASE_SCHEMES):
        raise ValueError(f"must start with {' or '.join(DATABASE_SCHEMES)}")
    return value


DatabaseUrl = Annotated[
    str | None,
    BeforeValidator(none_if_empty),
    AfterValidator(_database_url),
    Field(
        json_schema_extra=accepting("`sqlite+aiosqlite:///path` or `postgresql+asyncpg://user:pass@host/db`")
    ),
]
Port = Annotated[int, Field(ge=1, le=65535)]


class Environment(EnvSettingsSource):
    """The process environment, or the mapping a caller passes (tests: no patching of ``os.environ``)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None) -> None:
        self._given = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self._given is None:
            return super()._load_env_vars()
        # as pydantic-settings reads os.environ here: names in any case, an empty value unset
        return {k.lower(): v for k, v in self._given.items() if v != ""}
