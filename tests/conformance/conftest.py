"""The bus under test, built per adapter, and ``Recorder``: a handler that remembers what it got."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest

from app.bus import Backoff, Bus, DeadLetterSink, Envelope, MemoryBus

# fast enough for a suite, slow enough that a bus ignoring the backoff is caught (see test_bus.py):
# every jittered draw at the top of its window, so each wait is known
MAX_ATTEMPTS = 3
BACKOFF = Backoff(0.005, 0.05, random=lambda: 1.0)
# adapters run here; NATS and RabbitMQ join once brokers/nats.py and brokers/rabbitmq.py exist
KINDS = ["memory", "rabbitmq", "nats"]


@contextlib.asynccontextmanager
async def open_test_bus(
    kind: str, *, namespace: str, dead_letters: DeadLetterSink | None = None
) -> AsyncIterator[Bus]:
    """A bus of ``kind`` with fast retries, closed on exit. ``namespace`` keeps broker-side names
    (streams, queues) of one test apart from every other test's; the memory bus has none to share."""
    bus: Bus
    if kind == "memory":
        bus = MemoryBus(max_attempts=MAX_ATTEMPTS, backoff=BACKOFF, dead_letters=dead_letters)
    elif kind == "rabbitmq":
        from app.messaging.brokers.rabbitmq import RabbitBus

        bus = RabbitBus(
            "amqp://guest:guest@127.0.0.1:5672/",
            namespace=namespace,
            max_attempts=MAX_ATTEMPTS,
            backoff=BACKOFF,
            dead_letters=dead_letters,
            delete_on_close=True,
        )
        try:
            await bus.connect()
        except ConnectionError as exc:
            pytest.skip(f"{exc}: start it with `rabbitmq-server -detached`")
    elif kind == "nats":
        from app.messaging.brokers.nats import NatsBus

        bus = NatsBus(
            "nats://127.0.0.1:4222",
            namespace=namespace,
            max_attempts=MAX_ATTEMPTS,
            backoff=BACKOFF,
            dead_letters=dead_letters,
            delete_on_close=True,
        )
        try:
            await bus.connect()
        except ConnectionError as exc:
            pytest.skip(
                f"{exc}: start it with `start-stop-daemon --start --oknodo --background --exec "
                "/usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server "
                "-l /var/log/nats-server.log`"
            )
    else:
        raise ValueError(f"no test bus for {kind!r} (namespace {namespace})")
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
def namespace() -> str:
    return uuid4().hex[:8]


@pytest.fixture(params=KINDS)
def bus_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def bus(bus_kind: str, namespace: str) -> AsyncIterator[Bus]:
    async with open_test_bus(bus_kind, namespace=namespace) as bus:
        yield bus


@pytest.fixture
async def memory_bus(namespace: str) -> AsyncIterator[MemoryBus]:
    """For what only the in-process bus does: settle reports (``on_settled``) to its relay."""
    async with open_test_bus("memory", namespace=namespace) as bus:
        assert isinstance(bus, MemoryBus)
        yield bus


def envelope(event_type: str, *, subject: str = "", source: str = "test", **data: Any) -> Envelope:
    return Envelope(type=event_type, source=source, subject=subject, data=data)


class HandlerFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Delivery:
    event: Envelope
    at: float  # time.monotonic() when the handler was called


class Recorder:
    """A handler that records every delivery it gets. It raises on the first ``fail_first`` deliveries
    and on every delivery of an event ``fail_if`` picks; the rest it acks. ``len()`` counts acks."""

    def __init__(self, *, fail_first: int = 0, fail_if: Callable[[Envelope], bool] | None = None) -> None:
        self.fail_first = fail_first
        self.fail_if = fail_if
        self.deliveries: list[Delivery] = []
        self.handled: list[Envelope] = []

    async def __call__(self, event: Envelope) -> None:
        self.deliveries.append(Delivery(event, time.monotonic()))
        if len(self.deliveries) <= self.fail_first or (self.fail_if is not None and self.fail_if(event)):
            raise HandlerFailed(f"refused {event.id} on attempt {event.attempt}")
        self.handled.append(event)

    def __len__(self) -> int:
        return len(self.handled)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.handled]

    def attempts_of(self, event: Envelope) -> list[int]:
        return [d.event.attempt for d in self.deliveries if d.event.id == event.id]
