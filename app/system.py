"""The module registry and :class:`System`: the running modules, their databases, the bus, the relays.

This is the composition root for everything but HTTP (``app/main.py`` adds that): usable on its own by
tests and tools. It is one of the two places that may import the modules (the invariant checker, which
only reads, is the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from types import ModuleType
from typing import Any

from app import billing, notifications, orders, person
from app.bus import Backoff, Bus, DeadLetterSink, Envelope, MemoryBus
from app.config import Settings
from app.messaging.chaos import Chaos, ChaosBus, CrashPoint
from app.messaging.deadletters import DeadLetterStore, Store
from app.messaging.inbox import ModuleHandler, consume
from app.messaging.outbox import Relay
from app.observe.observers import ObservedBus, Observers
from app.orders.replies import Replies
from app.storage.database import Database
from app.storage.idempotency import prune
from app.storage.migrate import migrate
from app.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

MODULES: Mapping[str, ModuleType] = {
    "person": person,
    "billing": billing,
    "orders": orders,
    "notifications": notifications,
}


def make_bus(settings: Settings, dead_letters: DeadLetterSink) -> Bus:
    """The bus ``BUS_URL`` names (System wraps it: the lab's controls, then the observers)."""
    backoff = Backoff(settings.bus_backoff_base, settings.bus_backoff_cap)
    bus: Bus
    if settings.bus_url.startswith("memory:"):
        bus = MemoryBus(max_attempts=settings.bus_max_attempts, backoff=backoff, dead_letters=dead_letters)
    elif settings.bus_url.startswith(("nats://", "tls://")):
        from app.messaging.brokers.nats import NatsBus

        bus = NatsBus(
            settings.bus_url,
            namespace=settings.bus_namespace,
            max_attempts=settings.bus_max_attempts,
            backoff=backoff,
            dead_letters=dead_letters,
            ack_wait=settings.bus_ack_wait,
            replicas=settings.bus_replicas,
        )
    elif settings.bus_url.startswith(("amqp://", "amqps://")):
        from app.messaging.brokers.rabbitmq import RabbitBus

        bus = RabbitBus(
            settings.bus_url,
            namespace=settings.bus_namespace,
            max_attempts=settings.bus_max_attempts,
            backoff=backoff,
            dead_letters=dead_letters,
        )
    else:
        raise ValueError(
            f"unsupported BUS_URL {settings.bus_url!r}: use memory://, nats://host:4222 or amqp://user:pass@host:5672/"
        )
    return bus


def in_memory(url: str) -> bool:
    """An in-memory SQLite URL (``sqlite+aiosqlite:///:memory:``, ``sqlite://``): one per Database."""
    if not url.startswith("sqlite"):
        return False
    path = url.split("://", 1)[1]
    return ":memory:" in path or path in ("", "/")


def consumers() -> dict[str, set[str]]:
    """Every event type and the groups (modules) that consume it, across all modules."""
    out: dict[str, set[str]] = {}
    for name, module in MODULES.items():
        for event_type in module.SUBSCRIPTIONS:
            out.setdefault(event_type, set()).add(name)
    return out


def bind(
    handler: ModuleHandler, dependencies: Mapping[str, object]
) -> Callable[[UnitOfWork, Envelope], None]:
    """Hand a module's handler the dependencies it names after ``(uow, event)`` (the way the bootstrap
    of *Architecture Patterns with Python* does): handlers stay plain functions, and only this file
    knows where their collaborators come from."""
    wanted = list(inspect.signature(handler).parameters)[2:]
    missing = [name for name in wanted if name not in dependencies]
    if missing:
        raise TypeError(f"{handler.__qualname__} needs {', '.join(missing)}, which no module provides")
    return partial(handler, **{name: dependencies[name] for name in wanted}) if wanted else handler


@dataclass
class System:
    """The running modules: their databases, the bus, the relays. Usable without HTTP (tests, tools)."""

    settings: Settings
    dbs: dict[str, Database] = field(default_factory=dict)
    relays: dict[str, Relay] = field(default_factory=dict)
    bus: Bus | None = None
    # the lab's layer of the bus: chaos (BUS_CHAOS, or PUT /admin/chaos) and paused modules
    chaos: ChaosBus | None = None
    dead_letters: DeadLetterStore | None = None
    observers: Observers = field(default_factory=Observers)
    # the orders module's open createOrder requests (its handlers wake them)
    replies: Replies = field(default_factory=Replies)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, bus: Bus | None = None) -> None:
        for name in self.settings.modules:
            module = MODULES[name]
            db = Database(
                name, self.settings.database_url_for(name), module.metadata, outbox=module.messaging.outbox
            )
            if in_memory(db.url):
                # migrating would open a second, empty in-memory database; this one starts from the
                # module's metadata, which tests/unit/test_migrations.py holds equal to the migrations
                await db.start(create_tables=True)
            else:
                await migrate(db.url, name)
                await db.start(create_tables=False)
            if self.settings.crash_at:
                db.after_commit_hook = partial(CrashPoint(self.settings.crash_at).maybe, "after_commit")
            db.on_note = self.observers.on_note
            self.dbs[name] = db
        if "orders" in self.dbs:
            await self.replies.start(self.dbs["orders"].url)
        self.dead_letters = DeadLetterStore(
            {n: Store(db, MODULES[n].messaging.deadletter) for n, db in self.dbs.items()}
        )
        inner = bus or make_bus(self.settings, self.observers.dead_letter_sink(self.dead_letters))
        spec = self.settings.bus_chaos
        chaos = Chaos.parse(spec) if spec else None
        self.chaos = inner if isinstance(inner, ChaosBus) else ChaosBus(inner, chaos)
        # the observers above the lab's layer: they see what reaches a consumer's code (a duplicate
        # as a second delivery, a lost ack as a redelivery); with no chaos it costs a lookup per delivery
        self.bus = ObservedBus(self.chaos, self.observers)
        await self.bus.connect()  # a broker bus: fail fast here, not on the first publish
        self.bus.expect_groups(consumers())
        dependencies: dict[str, Any] = {"replies": self.replies}
        # consumers first, so what the relays publish from an earlier run finds them; CONSUME=0 (the
        # topology's console) neither consumes nor relays: its relays only answer /admin/outbox
        for name, db in self.dbs.items() if self.settings.consume else ():
            module = MODULES[name]
            for event_type, handler in module.SUBSCRIPTIONS.items():
                bound = bind(handler, dependencies)
                await self.bus.subscribe(event_type, name, consume(db, module.messaging.inbox, name, bound))
        for name, db in self.dbs.items():
            relay = Relay(db, self.bus)
            if self.settings.consume:
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
        await self.replies.stop()
        for db in self.dbs.values():
            await db.stop()

    async def ready(self) -> dict[str, bool]:
        checks = {f"db:{n}": await db.ping() for n, db in self.dbs.items()}
        checks["bus"] = self.bus is not None and self.bus.ready
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
