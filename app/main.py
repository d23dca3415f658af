"""create_app: the one place that wires modules, their databases, the bus and the relays."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from types import ModuleType

from fastapi import FastAPI

from app import admin, asyncapi, billing, docs_assets, flows, notifications, orders, person, problems, web
from app.auth import Auth
from app.bus import Backoff, Bus, DeadLetterSink, MemoryBus
from app.chaos import Chaos, ChaosBus, CrashPoint
from app.config import Settings
from app.db import Database
from app.deadletters import DeadLetterStore, Store
from app.idempotency import prune
from app.inbox import consume
from app.logs import CorrelationObserver
from app.metrics import Metrics
from app.middleware import EdgeMiddleware
from app.migrate import migrate
from app.observe import ObservedBus, Observers
from app.outbox import Relay

log = logging.getLogger(__name__)

MODULES: Mapping[str, ModuleType] = {
    "person": person,
    "billing": billing,
    "orders": orders,
    "notifications": notifications,
}


def make_bus(settings: Settings, dead_letters: DeadLetterSink, observers: Observers | None = None) -> Bus:
    bus: Bus
    if settings.bus_url.startswith("memory:"):
        bus = MemoryBus(
            max_attempts=settings.bus_max_attempts,
            backoff=Backoff(settings.bus_backoff_base, settings.bus_backoff_cap),
            dead_letters=dead_letters,
        )
    elif settings.bus_url.startswith(("nats://", "tls://")):
        from app.brokers.nats import NatsBus

        bus = NatsBus(
            settings.bus_url,
            namespace=settings.bus_namespace,
            max_attempts=settings.bus_max_attempts,
            backoff=Backoff(settings.bus_backoff_base, settings.bus_backoff_cap),
            dead_letters=dead_letters,
            ack_wait=settings.bus_ack_wait,
            replicas=settings.bus_replicas,
        )
    elif settings.bus_url.startswith(("amqp://", "amqps://")):
        from app.brokers.rabbitmq import RabbitBus

        bus = RabbitBus(
            settings.bus_url,
            namespace=settings.bus_namespace,
            max_attempts=settings.bus_max_attempts,
            backoff=Backoff(settings.bus_backoff_base, settings.bus_backoff_cap),
            dead_letters=dead_letters,
        )
    else:
        raise ValueError(
            f"unsupported BUS_URL {settings.bus_url!r}: use memory://, nats://host:4222 or amqp://user:pass@host:5672/"
        )
    if observers is not None:
        # below chaos: observers see what the consumers see, injected failures included
        bus = ObservedBus(bus, observers)
    if settings.bus_chaos:
        bus = ChaosBus(bus, Chaos.parse(settings.bus_chaos))
    return bus


def consumers() -> dict[str, set[str]]:
    """Every event type and the groups (modules) that consume it, across all modules."""
    out: dict[str, set[str]] = {}
    for name, module in MODULES.items():
        for event_type in module.SUBSCRIPTIONS:
            out.setdefault(event_type, set()).add(name)
    return out


@dataclass
class System:
    """The running modules: their databases, the bus, the relays. Usable without HTTP (tests, tools)."""

    settings: Settings
    dbs: dict[str, Database] = field(default_factory=dict)
    relays: dict[str, Relay] = field(default_factory=dict)
    bus: Bus | None = None
    dead_letters: DeadLetterStore | None = None
    observers: Observers = field(default_factory=Observers)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, bus: Bus | None = None) -> None:
        for name in self.settings.modules:
            module = MODULES[name]
            db = Database(
                name, self.settings.database_url_for(name), module.metadata, outbox=module.messaging.outbox
            )
            await migrate(db.url, name)
            await db.start(create_tables=False)
            if self.settings.crash_at:
                db.after_commit_hook = partial(CrashPoint(self.settings.crash_at).maybe, "after_commit")
            self.dbs[name] = db
        self.dead_letters = DeadLetterStore(
            {n: Store(db, MODULES[n].messaging.deadletter) for n, db in self.dbs.items()}
        )
        self.bus = bus or make_bus(
            self.settings, self.observers.dead_letter_sink(self.dead_letters), self.observers
        )
        connect = getattr(self.bus, "connect", None)
        if connect is not None:
            await connect()  # a broker bus: fail fast here, not on the first publish
        expect_groups = getattr(self.bus, "expect_groups", None)
        if expect_groups is not None:
            expect_groups(consumers())
        # consumers first, so what the relays publish from an earlier run finds them
        for name, db in self.dbs.items():
            module = MODULES[name]
            for event_type, handler in module.SUBSCRIPTIONS.items():
                await self.bus.subscribe(event_type, name, consume(db, module.messaging.inbox, name, handler))
        for name, db in self.dbs.items():
            relay = Relay(db, self.bus)
            await relay.start()
            self.relays[name] = relay
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.bus is not None:
            await self.bus.close()
        for relay in self.relays.values():
            await relay.stop()
        for db in self.dbs.values():
            await db.stop()

    async def ready(self) -> dict[str, bool]:
        checks = {f"db:{n}": await db.ping() for n, db in self.dbs.items()}
        checks["bus"] = bool(getattr(self.bus, "ready", self.bus is not None))
        return checks

    async def _housekeeping(self) -> None:
        ttl = timedelta(hours=self.settings.idempotency_ttl_hours)
        while True:
            for name, db in self.dbs.items():
                try:
                    await prune(db, MODULES[name].messaging.idempotency, ttl)
                except Exception:
                    log.exception("idempotency pruning failed for %s", name)
            await asyncio.sleep(3600)


def create_app(settings: Settings, *, bus: Bus | None = None) -> FastAPI:
    system = System(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await system.start(bus)
        app.state.dbs = system.dbs
        try:
            yield
        finally:
            await system.stop()

    app = FastAPI(
        title="eventcollab",
        version="0.1.0",
        summary="Event collaboration through a message broker: the seed scenario, durable.",
        lifespan=lifespan,
        docs_url=None,  # served by docs_assets.router: Swagger UI from vendored files, not a CDN
    )
    app.state.settings = settings
    app.state.system = system
    app.state.auth = auth = Auth(settings)
    if "person" in settings.modules:
        # a token of a login that no longer exists is refused where the person module can tell

        async def user_exists(login: str) -> bool:
            return bool(await system.dbs["person"].query(person.service.exists, login))

        auth.user_exists = user_exists
    problems.install(app)
    for name in settings.modules:
        app.include_router(MODULES[name].router)
    app.include_router(admin.router(system))
    system.observers.add(CorrelationObserver())  # first: the others' log lines carry the id
    metrics = Metrics(system.relays)
    system.observers.add(metrics)
    app.include_router(metrics.router())
    app.include_router(asyncapi.router())
    app.include_router(docs_assets.router(app.title))
    recorder = flows.FlowRecorder.from_settings(settings)
    if recorder.max_flows > 0:  # FLOWS_MAX=0 turns the recorder off
        system.observers.add(recorder)
    app.include_router(flows.router(recorder, system))
    app.include_router(web.router)
    app.add_middleware(EdgeMiddleware, max_body=settings.max_body_bytes, observers=system.observers)
    if settings.otel_traces:  # off by default: then no OpenTelemetry code is imported or run
        from app.tracing import install

        install(app, settings, system.observers)  # last: its server span is the outermost layer
    return app
