"""Settings: read from the environment once (in ``__main__``) and passed down; nothing runs at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

MODULES: tuple[str, ...] = ("person", "billing", "orders", "notifications")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    modules: tuple[str, ...] = MODULES
    bus_url: str = "memory://"
    # names the broker's streams, exchanges and queues, so several deployments can share a broker
    bus_namespace: str = "eventcollab"
    # NATS: seconds before an unacked delivery (its consumer died) is sent again; stream replicas
    bus_ack_wait: float = 30.0
    bus_replicas: int = 1
    # a URL for every module, or None: one SQLite file per module under data_dir
    database_url: str | None = None
    module_database_urls: Mapping[str, str] = field(default_factory=dict)
    order_reply_timeout: float = 5.0
    bus_max_attempts: int = 5
    bus_backoff_base: float = 0.05
    bus_backoff_cap: float = 2.0
    idempotency_ttl_hours: float = 48.0
    max_body_bytes: int = 64 * 1024
    log_level: str = "info"
    # security (app/edge/auth.py): "on" unless a teaching walk-through says AUTH_MODE=off
    auth_mode: str = "on"
    auth_secret: str | None = None  # None: a random one kept in data_dir/auth-secret
    token_ttl_seconds: int = 3600
    auth_hash_concurrency: int = 4
    login_rate_per_login: int = 10  # attempts a minute
    login_rate_per_address: int = 100
    log_format: str = "json"  # json | console
    # the flow viewer's memory: flows kept (oldest dropped first; 0 = off) and hops kept per flow
    flows_max: int = 1000
    flows_max_hops: int = 500
    # seeded faults for tests and demos (app/messaging/chaos.py); empty = off
    bus_chaos: str = ""
    crash_at: str = ""
    # OpenTelemetry traces (app/observe/tracing.py): "" off | console | memory | otlp
    otel_traces: str = ""

    def database_url_for(self, module: str) -> str:
        if module in self.module_database_urls:
            return self.module_database_urls[module]
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{module}.sqlite3'}"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        base = cls()
        modules = tuple(m.strip() for m in env.get("MODULES", ",".join(MODULES)).split(",") if m.strip())
        return cls(
            host=env.get("HOST", base.host),
            port=int(env.get("PORT", base.port)),
            data_dir=Path(env.get("DATA_DIR", str(base.data_dir))),
            modules=modules,
            bus_url=env.get("BUS_URL", base.bus_url),
            bus_namespace=env.get("BUS_NAMESPACE", base.bus_namespace),
            bus_ack_wait=float(env.get("BUS_ACK_WAIT", base.bus_ack_wait)),
            bus_replicas=int(env.get("BUS_REPLICAS", base.bus_replicas)),
            database_url=env.get("DATABASE_URL") or None,
            module_database_urls={
                m: env[f"{m.upper()}_DATABASE_URL"] for m in MODULES if env.get(f"{m.upper()}_DATABASE_URL")
            },
            order_reply_timeout=float(env.get("ORDER_REPLY_TIMEOUT", base.order_reply_timeout)),
            bus_max_attempts=int(env.get("BUS_MAX_ATTEMPTS", base.bus_max_attempts)),
            bus_backoff_base=float(env.get("BUS_BACKOFF_BASE", base.bus_backoff_base)),
            bus_backoff_cap=float(env.get("BUS_BACKOFF_CAP", base.bus_backoff_cap)),
            idempotency_ttl_hours=float(env.get("IDEMPOTENCY_TTL_HOURS", base.idempotency_ttl_hours)),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", base.max_body_bytes)),
            log_level=env.get("LOG_LEVEL", base.log_level),
            auth_mode=env.get("AUTH_MODE", base.auth_mode),
            auth_secret=env.get("AUTH_SECRET") or None,
            token_ttl_seconds=int(env.get("TOKEN_TTL_SECONDS", base.token_ttl_seconds)),
            auth_hash_concurrency=int(env.get("AUTH_HASH_CONCURRENCY", base.auth_hash_concurrency)),
            login_rate_per_login=int(env.get("LOGIN_RATE_PER_LOGIN", base.login_rate_per_login)),
            login_rate_per_address=int(env.get("LOGIN_RATE_PER_ADDRESS", base.login_rate_per_address)),
            log_format=env.get("LOG_FORMAT", base.log_format),
            flows_max=int(env.get("FLOWS_MAX", base.flows_max)),
            flows_max_hops=int(env.get("FLOWS_MAX_HOPS", base.flows_max_hops)),
            bus_chaos=env.get("BUS_CHAOS", ""),
            crash_at=env.get("CRASH_AT", ""),
            otel_traces=env.get("OTEL_TRACES", ""),
        )
