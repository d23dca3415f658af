"""The kinds of value settings take, and where ``Settings.load`` reads them from: kept apart from the
model in ``app/config.py`` so that file holds the settings themselves. Imports nothing of the app but
the module names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, EnvSettingsSource

MODULES: tuple[str, ...] = ("person", "billing", "orders", "notifications")
# Docker and Kubernetes secrets: a file named after a setting (auth_secret holds AUTH_SECRET)
SECRETS_DIR = Path("/run/secrets")
DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
BUS_SCHEMES = ("memory://", "nats://", "tls://", "amqp://", "amqps://")
NATS_SCHEMES = ("nats://", "tls://")


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


def networks(value: str) -> str:
    """FORWARDED_ALLOW_IPS: a comma list of addresses and networks, or ``*``."""
    import ipaddress

    for item in (v.strip() for v in value.split(",") if v.strip()):
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is neither an IP address nor a network") from None
    return value


def header_safe(value: SecretStr | None) -> SecretStr | None:
    # the operator token travels in an Authorization header and in the page's ?operator= address
    text = value.get_secret_value() if value is not None else "x"
    if not all("!" <= ch <= "~" for ch in text):
        raise ValueError("must be printable ASCII without spaces")
    return value


def feed_over(on: bool, bus_url: str | None) -> bool:
    # the flow feed rides core NATS on the bus's own server; bus_url None: refused already, said there
    if on and bus_url is not None and not bus_url.startswith(NATS_SCHEMES):
        raise ValueError(f"needs a NATS BUS_URL ({' or '.join(NATS_SCHEMES)}), not {bus_url.split(':')[0]}")
    return on


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
