"""Settings: one pydantic-settings model, read once (``Settings.load`` in ``__main__``) and passed down.

``Settings(**values)`` uses only what it is given and the defaults: tests build it directly, and
nothing reads the environment at import or construction. ``Settings.load()`` reads, highest first:
its overrides (the command line's flags), the environment, a ``.env`` file in the working directory,
files in ``/run/secrets`` named after a setting (Docker and Kubernetes secrets: ``auth_secret`` holds
AUTH_SECRET), then the defaults. A value it cannot take raises :class:`SettingsError`, whose message
names each variable, what it was given and what it accepts.

What a setting accepts is said once (type, bounds, ``accepts``); the refusal message, docs/settings.md
and ``python -m app settings`` word it (app/ops/settings_doc.py); a test fails if the page drifts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from app.ops.settings_doc import explain
from app.ops.settings_kinds import (
    BUS_SCHEMES,
    SECRETS_DIR,
    DatabaseUrl,
    Environment,
    Port,
    accepting,
    feed_over,
    header_safe,
    networks,
    none_if_empty,
    replicas_of,
)
from app.ops.settings_kinds import MODULES as MODULES  # re-exported: the module names


class SettingsError(ValueError):
    """Settings the system cannot start with; the message says which, what they got, what they take."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_ignore_empty=True)

    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="interface to listen on (`--host`)",
        json_schema_extra=accepting("a host name or an IP address; `0.0.0.0`: every interface"),
    )
    port: Port = Field(8000, description="port to listen on (`--port`)")
    data_dir: Path = Field(
        Path("data"),
        description="where the SQLite files go, `<module>.sqlite3`, and the generated `auth-secret` and "
        "`operator-token` (`--data-dir`)",
        json_schema_extra=accepting("a directory path"),
    )
    modules: Annotated[tuple[str, ...], NoDecode] = Field(
        MODULES,
        min_length=1,
        description="the modules this process runs (`--modules`)",
        json_schema_extra=accepting(f"a comma list of {', '.join(MODULES)}: at least one, none twice"),
    )
    bus_url: str = Field(
        "memory://",
        description="the bus: in-process, NATS JetStream or RabbitMQ",
        json_schema_extra=accepting(
            "`memory://`, `nats://host:4222` (or `tls://`), `amqp://user:pass@host:5672/` (or `amqps://`)"
        ),
    )
    bus_namespace: str = Field(
        "eventcollab",
        pattern=r"^[A-Za-z0-9_-]+$",
        max_length=64,
        description="prefix of the broker's streams, exchanges and queues, so several deployments (or "
        "test runs) can share one broker",
        json_schema_extra=accepting("letters, digits, `_` and `-`, at most 64"),
    )
    bus_ack_wait: float = Field(
        30.0, gt=0, description="NATS: seconds before a delivery whose consumer died unacked is sent again"
    )
    bus_replicas: int = Field(
        1, ge=1, le=5, description="NATS: JetStream stream replicas (3 on a 3-node cluster in production)"
    )
    database_url: DatabaseUrl = Field(
        None,
        description="one SQLAlchemy URL for every module instead of the per-module SQLite files",
    )
    person_database_url: DatabaseUrl = Field(
        None, description="person's own database; wins over `DATABASE_URL`"
    )
    billing_database_url: DatabaseUrl = Field(
        None, description="billing's own database; wins over `DATABASE_URL`"
    )
    orders_database_url: DatabaseUrl = Field(
        None, description="orders' own database; wins over `DATABASE_URL`"
    )
    notifications_database_url: DatabaseUrl = Field(
        None, description="notifications' own database; wins over `DATABASE_URL`"
    )
    order_reply_timeout: float = Field(
        5.0,
        gt=0,
        description="seconds createOrder waits for the outcome before answering 202; also the grace "
        "before a pending order counts as stale in `check` and `/admin/invariants`",
    )
    bus_max_attempts: int = Field(
        5, ge=1, description="deliveries of one event to one group before it is dead-lettered"
    )
    bus_backoff_base: float = Field(
        0.05, gt=0, description="seconds before the first redelivery; doubles with each attempt"
    )
    bus_backoff_cap: float = Field(
        2.0,
        gt=0,
        description="longest wait between redeliveries, in seconds",
        json_schema_extra=accepting("a number ≥ `BUS_BACKOFF_BASE`"),
    )
    idempotency_ttl_hours: float = Field(48.0, gt=0, description="how long an Idempotency-Key is remembered")
    max_body_bytes: int = Field(64 * 1024, ge=1, description="largest request body; a larger one gets 413")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Python logging and uvicorn log level (any case)"
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="`json`: one JSON object a line with the correlation id; `console`: for humans; "
        "`auto`: console when stderr is a terminal, json otherwise",
    )
    access_log: bool = Field(False, description="uvicorn's access log, a line per request")
    # security (app/edge/auth.py)
    auth_mode: Literal["on", "off"] = Field(
        "on",
        description="`off` trusts every request with no token: teaching walk-throughs only, logged as a "
        "warning at start-up",
    )
    auth_secret: SecretStr | None = Field(
        None,
        min_length=32,
        description="the HS256 key that signs login tokens; unset: a random one kept in "
        "`<DATA_DIR>/auth-secret`. Processes that accept each other's tokens must share it",
        json_schema_extra=accepting("text of 32 characters or more"),
    )
    operator_token: SecretStr | None = Field(
        None,
        min_length=32,
        description="the Bearer token of the operator endpoints (`/admin/*`, `/metrics`, every login's "
        "`/flows`); unset: a random one kept in `<DATA_DIR>/operator-token` (`python -m app operator-token` "
        "prints it). Processes behind one Prometheus or one operator should share it",
        json_schema_extra=accepting("printable ASCII without spaces, 32 characters or more"),
    )
    token_ttl_seconds: int = Field(3600, ge=1, description="lifetime of a token from `POST /person/login`")
    auth_hash_concurrency: int = Field(
        4,
        ge=1,
        description="argon2id hashes (register, login) at once per process, `AUTH_HASH_MEMORY_KIB` each; "
        "more wait",
    )
    # OWASP's argon2id minimum is the default (m=19 MiB, t=2); lower values are for fast tests only
    auth_hash_time_cost: int = Field(2, ge=1, description="argon2id passes over memory per hash (OWASP: 2)")
    auth_hash_memory_kib: int = Field(
        19 * 1024, ge=8, description="argon2id memory per hash in KiB (OWASP: 19456)"
    )
    login_rate_per_login: int = Field(10, ge=1, description="login attempts a minute for one login, then 429")
    login_rate_per_address: int = Field(
        100, ge=1, description="login attempts a minute from one client address, then 429"
    )
    # the flow viewer's memory
    flows_max: int = Field(
        1000, ge=0, description="flows the flow viewer keeps, oldest dropped first; `0` turns it off"
    )
    flows_max_hops: int = Field(500, ge=1, description="hops kept per flow; more are counted, not stored")
    flows_stream_seconds: float = Field(
        300.0,
        gt=0,
        description="longest life of one `/flows/stream` connection (never past its token's expiry): the "
        "page reconnects, and the token is checked again",
    )
    flows_feed: bool = Field(
        False,
        description="`1`: processes that consume send their flows' hops over core NATS (the bus's server; "
        "lossy by design) to the `CONSUME=0` console, whose `/flows` then shows whole flows, and take its "
        "lab commands (`/admin/chaos`, `/admin/modules` there act on every module process); needs NATS",
    )
    # seeded faults for tests and demos (app/messaging/chaos.py)
    bus_chaos: str = Field(
        "",
        description="seeded delivery faults for tests and demos, e.g. "
        "`seed=42,duplicate=0.1,delay=0-50ms,reorder=0.05,fail=0.05`; empty = off",
        json_schema_extra=accepting(
            "a comma list of `seed=N`, `duplicate=P`, `delay=A-Bms`, `reorder=P`, `fail=P`"
        ),
    )
    crash_at: str = Field(
        "",
        description="with probability P per committed batch, exit at once (like `kill -9`) between a "
        "COMMIT and the hand-off of its events; empty = off",
        json_schema_extra=accepting("`after_commit:P`"),
    )
    otel_traces: Literal["", "console", "memory", "otlp"] = Field(
        "",
        description="OpenTelemetry traces (app/observe/tracing.py); empty = off, or as "
        "`OTEL_TRACES_EXPORTER` says",
    )
    # the OpenTelemetry SDK's own variables, read here like every other setting
    otel_traces_exporter: Literal["", "none", "console", "otlp"] = Field(
        "",
        description="the OpenTelemetry standard's name for the exporter: `otlp` or `console` turn traces on "
        "when `OTEL_TRACES` is empty; `none` or empty: off",
    )
    otel_service_name: str = Field(
        "",
        max_length=200,
        description="the traces' `service.name`; empty: `eventcollab`, or `eventcollab-<module>` for a "
        "process running one module (each process of the distributed topology under its own name)",
        json_schema_extra=accepting("any text; empty for the default"),
    )
    consume: bool = Field(
        True,
        description="`0`: serve HTTP over the modules' databases but consume no event and relay no "
        "outbox: the distributed topology's console process, behind `/`, `/docs` and `/admin/*` at its "
        "front",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="addresses whose `X-Forwarded-For`/`-Proto` uvicorn believes (uvicorn's "
        "`forwarded_allow_ips`): the reverse proxy in front, so the login rate limit counts the client's "
        "address, not the proxy's",
        json_schema_extra=accepting("a comma list of IP addresses and networks (`10.0.0.0/8`); `*`: any"),
    )
    # the distributed topology on one machine (`python -m app up`, app/ops/topology.py)
    up_port: int = Field(
        8080,
        ge=1,
        le=65000,
        description="`python -m app up`: nginx, the one base URL, listens on this port and the module "
        "processes on the ones right after it, so one number moves the whole topology",
    )
    up_replicas: str = Field(
        "",
        description="`python -m app up`: processes per module where the layout's default (person 1, "
        "billing 2, orders 2, notifications 1) does not suit, e.g. `orders=3,billing=3`",
        json_schema_extra=accepting("a comma list of `module=N`, N from 1 to 8"),
    )
    up_front_workers: int = Field(1, ge=1, le=16, description="`python -m app up`: nginx worker processes")

    @field_validator("modules", mode="before")
    @classmethod
    def _module_list(cls, value: object) -> object:
        names = tuple(m.strip() for m in value.split(",") if m.strip()) if isinstance(value, str) else value
        if isinstance(value, str) and not names:
            raise ValueError("names no module")
        if not isinstance(names, tuple | list):
            return names  # pydantic says what is wrong with it
        unknown = [m for m in names if m not in MODULES]
        if unknown:
            raise ValueError(
                f"no module named {', '.join(map(repr, unknown))}: choose from {', '.join(MODULES)}"
            )
        twice = sorted({m for m in names if names.count(m) > 1})
        if twice:
            raise ValueError(f"names {', '.join(twice)} more than once")
        return names

    @field_validator("up_replicas")
    @classmethod
    def _replicas(cls, value: str) -> str:
        replicas_of(value)
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, value: str) -> str:
        return networks(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("auth_secret", "operator_token", mode="before")
    @classmethod
    def _unset_if_empty(cls, value: object) -> object:
        return none_if_empty(value)

    @field_validator("operator_token")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        return header_safe(value)

    @field_validator("bus_url")
    @classmethod
    def _bus_url(cls, value: str) -> str:
        if not value.startswith(BUS_SCHEMES):
            raise ValueError(f"must start with {', '.join(BUS_SCHEMES)}")
        return value

    @field_validator("flows_feed")
    @classmethod
    def _feed_over_nats(cls, value: bool, info: ValidationInfo) -> bool:
        return feed_over(value, info.data.get("bus_url"))

    @field_validator("bus_backoff_cap")
    @classmethod
    def _cap_at_least_base(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("bus_backoff_base")
        if base is not None and value < base:
            raise ValueError(f"must be at least BUS_BACKOFF_BASE ({base})")
        return value

    @field_validator("bus_chaos", "crash_at")
    @classmethod
    def _faults(cls, value: str, info: ValidationInfo) -> str:
        if value:
            # the grammar lives with the faults it sets up; imported here, so config imports no platform
            from app.messaging.chaos import Chaos, CrashPoint

            Chaos.parse(value) if info.field_name == "bus_chaos" else CrashPoint(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # only what the caller gives: the environment is read by load(), once, not on every Settings()
        return (init_settings,)

    @classmethod
    def load(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        env_file: Path | None = Path(".env"),
        secrets_dir: Path | None = SECRETS_DIR,
        **flags: Any,
    ) -> Settings:
        """The settings of this process: ``flags`` (the command line's, ``--data-dir`` as ``data_dir``;
        None = not given) over the environment (``environ``, default ``os.environ``) over ``env_file``
        over ``secrets_dir`` over the defaults. A missing file or directory is skipped. Raises
        :class:`SettingsError`, naming a flag's value by its flag."""
        layers: list[PydanticBaseSettingsSource] = []  # lowest first
        if secrets_dir is not None and secrets_dir.is_dir():
            layers.append(SecretsSettingsSource(cls, secrets_dir=secrets_dir))
        if env_file is not None:
            layers.append(DotEnvSettingsSource(cls, env_file=env_file))
        layers.append(Environment(cls, environ))
        values: dict[str, Any] = {}
        for layer in layers:
            # a .env may hold other tools' variables too (docker compose): only settings are taken
            values.update((k, v) for k, v in layer().items() if k in cls.model_fields)
        given = {k: v for k, v in flags.items() if v is not None}
        return cls._validated({**values, **given}, given)

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked like any other value (``model_copy`` would not check)."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return self._validated({**kept, **changes}, {})

    @property
    def traces_exporter(self) -> str:
        """The exporter tracing uses: ``OTEL_TRACES``, else ``OTEL_TRACES_EXPORTER``; "" = off."""
        standard = "" if self.otel_traces_exporter == "none" else self.otel_traces_exporter
        return self.otel_traces or standard

    def database_url_for(self, module: str) -> str:
        own: str | None = getattr(self, f"{module}_database_url")
        if own:
            return own
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{module}.sqlite3'}"

    @property
    def module_database_urls(self) -> dict[str, str]:
        """The modules that have a database URL of their own (``<MODULE>_DATABASE_URL``)."""
        return {m: url for m in MODULES if (url := getattr(self, f"{m}_database_url"))}

    @classmethod
    def _validated(cls, values: dict[str, Any], flags: Mapping[str, Any]) -> Settings:
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(explain(exc, cls.model_fields, flags)) from None
