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
from app.messaging.brokers.rabbitmq import RabbitBus
from app.messaging.chaos import Chaos, ChaosBus
from tests.support.brokers import remaining

# fast enough for a suite, slow enough that a bus ignoring the backoff is caught (see test_bus.py):
# every jittered draw at the top of its window, so each wait is known
MAX_ATTEMPTS = 3
BACKOFF = Backoff(0.005, 0.05, random=lambda: 1.0)
# the memory bus wrapped in seeded chaos, as BUS_CHAOS does: a delay on every delivery and some held
# back (reorder: 4 x 3 ms + 20 ms) behind later events of other subjects; per-subject order, fan-out,
# redelivery and dead letters all hold through that. The second also delivers about half the events
# twice: what a duplicate cannot break still runs on it, the exactly-once counts are skipped
CHAOS = {
    "chaos": Chaos(seed=7, delay_max=0.003, reorder=0.2),
    "chaos-duplicates": Chaos(seed=7, duplicate=0.5, delay_max=0.003, reorder=0.2),
}
DUPLICATING = {kind for kind, chaos in CHAOS.items() if chaos.duplicate}
BROKER_URLS = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672/", "nats": "nats://127.0.0.1:4222"}
# every adapter runs the shared suite; brokers are skipped (with the command to start them) when down
KINDS = ["memory", *CHAOS, "rabbitmq", "nats"]
IN_PROCESS = ["memory", *CHAOS]  # not durable: they report settlement to the relay (on_settled)
EXACTLY_ONCE = (
    "the chaos bus delivers some events twice, so a count of exactly one delivery cannot hold here "
    "(consumers' inboxes absorb duplicates: tests/integration/test_chaos.py)"
)


@contextlib.asynccontextmanager
async def open_test_bus(
    kind: str, *, namespace: str, dead_letters: DeadLetterSink | None = None
) -> AsyncIterator[Bus]:
    """A bus of ``kind`` with fast retries, closed on exit. ``namespace`` keeps broker-side names
    (streams, queues) of one test apart from every other test's; the memory bus has none to share."""
    bus: Bus
    if kind == "memory":
        bus = MemoryBus(max_attempts=MAX_ATTEMPTS, backoff=BACKOFF, dead_letters=dead_letters)
    elif kind in CHAOS:
        inner = MemoryBus(max_attempts=MAX_ATTEMPTS, backoff=BACKOFF, dead_letters=dead_letters)
        bus = ChaosBus(inner, CHAOS[kind])
    elif kind == "rabbitmq":
        bus = RabbitBus(
            BROKER_URLS["rabbitmq"],
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
            BROKER_URLS["nats"],
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
    if kind in BROKER_URLS:
        # delete_on_close took everything this bus declared off the shared broker
        groups = bus.groups if isinstance(bus, RabbitBus) else ()
        left = await remaining(BROKER_URLS[kind], namespace, groups)
        assert not left, f"{kind} namespace {namespace} left behind: {left}"


@pytest.fixture
def namespace() -> str:
    return uuid4().hex[:8]


def skip_exactly_once_on_duplicates(request: pytest.FixtureRequest, kind: str) -> None:
    if kind in DUPLICATING and request.node.get_closest_marker("exactly_once"):
        pytest.skip(EXACTLY_ONCE)


@pytest.fixture(params=KINDS)
def bus_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    skip_exactly_once_on_duplicates(request, kind)
    return kind


@pytest.fixture(params=IN_PROCESS)
def in_process_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    skip_exactly_once_on_duplicates(request, kind)
    return kind


@pytest.fixture
async def bus(bus_kind: str, namespace: str) -> AsyncIterator[Bus]:
    async with open_test_bus(bus_kind, namespace=namespace) as bus:
        yield bus


@pytest.fixture
async def in_process_bus(in_process_kind: str, namespace: str) -> AsyncIterator[Bus]:
    """For what only an in-process bus does (memory, chaos over memory): settle reports
    (``on_settled``) to its relay."""
    async with open_test_bus(in_process_kind, namespace=namespace) as bus:
        assert not bus.durable
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
