"""What RabbitBus adds to the shared suite: confirms, durable queues across restarts, delivery counts,
the dead-letter queue. Each test has a namespace of its own and deletes its exchanges and queues."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from app.bus import Envelope
from app.messaging.brokers.rabbitmq import RabbitBus
from tests.conformance.conftest import BACKOFF, MAX_ATTEMPTS, Recorder, envelope
from tests.support.brokers import remaining
from tests.support.poll import until

HOST, PORT = "127.0.0.1", 5672
URL = f"amqp://guest:guest@{HOST}:{PORT}/"


def _reachable() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _reachable(),
    reason=f"RabbitMQ is not reachable at {HOST}:{PORT}: start it with `rabbitmq-server -detached`",
)


class Broker:
    """Opens buses on one namespace, looks into its queues, and deletes what they declared."""

    def __init__(self, namespace: str, connection: AbstractConnection, channel: AbstractChannel) -> None:
        self.namespace, self.connection, self.channel = namespace, connection, channel
        self.buses: list[RabbitBus] = []

    async def bus(self, url: str = URL, **options: Any) -> RabbitBus:
        options = {"max_attempts": MAX_ATTEMPTS, "backoff": BACKOFF, **options}
        bus = await RabbitBus.open(url, namespace=self.namespace, **options)
        self.buses.append(bus)
        return bus

    async def ready_count(self, queue: str) -> int:
        declared = await self.channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count

    async def drop_connections(self) -> int:
        """Have the broker close this namespace's bus connections, as a network failure would."""
        listed = await _rabbitmqctl("list_connections", "--no-table-headers", "pid", "client_properties")
        mine = f'{{"connection_name","eventcollab {self.namespace}"}}'
        pids = [line.split("\t")[0] for line in listed.splitlines() if mine in line]
        for pid in pids:
            await _rabbitmqctl("close_connection", pid, "test: connection lost")
        return len(pids)

    async def cleanup(self) -> None:
        for bus in self.buses:
            await bus.close()
        groups = {g for bus in self.buses for g in bus.groups}
        for group in groups:
            await self.channel.queue_delete(f"{self.namespace}.{group}")
            await self.channel.queue_delete(f"{self.namespace}.{group}.dead")
        for exchange in (f"{self.namespace}.events", f"{self.namespace}.dlx"):
            await self.channel.exchange_delete(exchange)
        left = await remaining(URL, self.namespace, groups)
        assert not left, f"namespace {self.namespace} left behind: {left}"


async def _rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture
async def broker(namespace: str) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect(URL)
    try:
        b = Broker(namespace, connection, await connection.channel())
        try:
            yield b
        finally:
            await b.cleanup()
    finally:
        await connection.close()


def happened(namespace: str) -> str:
    return f"{namespace}.happened.v1"


async def test_publish_returns_once_the_broker_holds_the_event_in_the_group_queue(
    broker: Broker, namespace: str
) -> None:
    consumer = await broker.bus()
    await consumer.subscribe(happened(namespace), "g", Recorder())
    await consumer.close()  # the queue stays, bound, with nobody consuming it
    publisher = await broker.bus()
    for i in range(3):
        await publisher.publish(envelope(happened(namespace), subject="s", n=i))
        # no polling: the confirm came after the queue stored it
        assert await broker.ready_count(f"{namespace}.g") == i + 1


async def test_a_traceparent_rides_in_the_message_headers_too(broker: Broker, namespace: str) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    consumer = await broker.bus()
    await consumer.subscribe(happened(namespace), "g", Recorder())
    await consumer.close()
    publisher = await broker.bus()
    await publisher.publish(replace(envelope(happened(namespace), subject="s"), traceparent=traceparent))
    queue = await broker.channel.get_queue(f"{namespace}.g")
    message = await queue.get(no_ack=True)
    assert message.headers["traceparent"] == traceparent


async def test_a_restarted_consumer_resumes_without_loss_and_without_acked_events_again(
    broker: Broker, namespace: str
) -> None:
    publisher = await broker.bus()
    before, after = Recorder(), Recorder()
    first = await broker.bus()
    await first.subscribe(happened(namespace), "g", before)
    sent_before = [envelope(happened(namespace), subject=f"s{i % 3}", n=i) for i in range(20)]
    for event in sent_before:
        await publisher.publish(event)
    await until(lambda: len(before) == len(sent_before))
    await first.close()
    # published while no member of the group runs: the durable queue keeps them
    sent_while_down = [envelope(happened(namespace), subject=f"s{i % 3}", n=i) for i in range(20, 40)]
    for event in sent_while_down:
        await publisher.publish(event)
    second = await broker.bus()
    await second.subscribe(happened(namespace), "g", after)
    await until(lambda: len(after) == len(sent_while_down))
    assert sorted(before.ids) == sorted(e.id for e in sent_before)
    assert sorted(after.ids) == sorted(e.id for e in sent_while_down)
    assert {d.event.attempt for d in after.deliveries} == {1}
    for subject in ("s0", "s1", "s2"):
        assert [e.id for e in after.handled if e.subject == subject] == [
            e.id for e in sent_while_down if e.subject == subject
        ]


async def test_an_event_in_flight_when_the_consumer_stops_comes_again_with_attempt_two(
    broker: Broker, namespace: str
) -> None:
    entered = asyncio.Event()
    seen: list[Envelope] = []

    async def stuck(event: Envelope) -> None:
        seen.append(event)
        entered.set()
        await asyncio.Event().wait()

    crashed = await broker.bus()
    await crashed.subscribe(happened(namespace), "g", stuck)
    event = envelope(happened(namespace), subject="s")
    await crashed.publish(event)
    await until(entered.is_set)
    await crashed.close()
    again = Recorder()
    restarted = await broker.bus()
    await restarted.subscribe(happened(namespace), "g", again)
    await until(lambda: len(again) == 1)
    assert [(e.id, e.attempt) for e in seen] == [(event.id, 1)]
    assert [(e.id, e.attempt) for e in again.handled] == [(event.id, 2)]


async def test_a_redelivery_at_the_last_attempt_that_fails_is_dead_lettered_at_once(
    broker: Broker, namespace: str
) -> None:
    entered = asyncio.Event()

    async def stuck(event: Envelope) -> None:
        entered.set()
        await asyncio.Event().wait()

    crashed = await broker.bus(max_attempts=2)
    await crashed.subscribe(happened(namespace), "g", stuck)
    event = envelope(happened(namespace), subject="s")
    await crashed.publish(event)
    await until(entered.is_set)
    await crashed.close()
    letters: list[tuple[Envelope, str, str]] = []

    async def sink(event: Envelope, group: str, error: str) -> None:
        letters.append((event, group, error))

    refusing = Recorder(fail_if=lambda e: True)
    restarted = await broker.bus(max_attempts=2, dead_letters=sink)
    await restarted.subscribe(happened(namespace), "g", refusing)
    await until(lambda: letters)
    assert refusing.attempts_of(event) == [2]
    assert [(e.id, e.attempt, g) for e, g, _ in letters] == [(event.id, 2, "g")]


async def test_dead_letters_land_in_the_group_dead_queue_after_the_sink(
    broker: Broker, namespace: str
) -> None:
    letters: list[str] = []

    async def sink(event: Envelope, group: str, error: str) -> None:
        letters.append(event.id)

    bus = await broker.bus(dead_letters=sink)
    handler = Recorder(fail_if=lambda e: bool(e.data.get("poison")))
    await bus.subscribe(happened(namespace), "g", handler)
    await bus.subscribe(happened(namespace), "other", Recorder())
    poison = envelope(happened(namespace), subject="s", poison=True)
    fine = envelope(happened(namespace), subject="s")
    await bus.publish(poison)
    await bus.publish(fine)
    await until(lambda: len(handler) == 1 and letters)
    assert letters == [poison.id]
    await until(lambda: broker.ready_count(f"{namespace}.g.dead"))
    dead = await broker.channel.get_queue(f"{namespace}.g.dead", ensure=False)
    message = await dead.get(no_ack=True)
    assert message.message_id == poison.id
    assert Envelope.from_json(message.body) == poison
    assert await broker.ready_count(f"{namespace}.g") == 0
    assert await broker.ready_count(f"{namespace}.other.dead") == 0


async def test_an_event_of_a_type_no_handler_here_takes_is_dead_lettered_after_the_grace(
    broker: Broker, namespace: str
) -> None:
    dropped = f"{namespace}.dropped.v1"
    old = await broker.bus()
    await old.subscribe(happened(namespace), "g", Recorder())
    await old.subscribe(dropped, "g", Recorder())
    await old.close()
    stale = envelope(dropped, subject="s")
    letters: list[tuple[str, str]] = []

    async def sink(event: Envelope, group: str, error: str) -> None:
        letters.append((event.id, error))

    new = await broker.bus(dead_letters=sink, handler_grace=0.05)
    await new.publish(stale)
    await new.subscribe(happened(namespace), "g", Recorder())
    await until(lambda: letters)
    assert letters == [(stale.id, f"no handler for {dropped} in group g")]
    await until(lambda: broker.ready_count(f"{namespace}.g.dead"))


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to drop a connection")
async def test_after_a_lost_connection_the_bus_reconnects_and_the_event_in_flight_comes_again(
    broker: Broker, namespace: str
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    seen: list[Envelope] = []

    async def handler(event: Envelope) -> None:
        seen.append(event)
        if event.data.get("hold") and event.attempt == 1:
            entered.set()
            await release.wait()  # finishes after the channel it came on is gone: its ack cannot land

    bus = await broker.bus(url=f"{URL}?reconnect_interval=0.1")
    await bus.subscribe(happened(namespace), "g", handler)
    held = envelope(happened(namespace), subject="s", hold=True)
    behind = envelope(happened(namespace), subject="s")
    await bus.publish(held)
    await bus.publish(behind)
    await until(entered.is_set)
    assert await broker.drop_connections() == 1
    await until(lambda: bus.ready)  # back within reconnect_interval, likely before rabbitmqctl exits
    release.set()
    after = envelope(happened(namespace), subject="s")
    await bus.publish(after)
    await until(lambda: after.id in {e.id for e in seen})
    assert [(e.id, e.attempt) for e in seen] == [
        (held.id, 1),
        (held.id, 2),
        (behind.id, 2),
        (after.id, 1),
    ]


async def test_two_bus_instances_in_one_group_share_its_queue(broker: Broker, namespace: str) -> None:
    one, two = Recorder(), Recorder()
    await (await broker.bus()).subscribe(happened(namespace), "g", one)
    await (await broker.bus()).subscribe(happened(namespace), "g", two)
    publisher = await broker.bus()
    sent = [envelope(happened(namespace), subject=f"s{i}") for i in range(40)]
    for event in sent:
        await publisher.publish(event)
    await until(lambda: len(one) + len(two) == len(sent))
    assert set(one.ids).isdisjoint(two.ids)
    assert set(one.ids) | set(two.ids) == {e.id for e in sent}
    assert one.handled and two.handled


async def test_ready_only_while_connected_and_a_closed_bus_refuses_work(
    broker: Broker, namespace: str
) -> None:
    bus = RabbitBus(URL, namespace=namespace)
    assert not bus.ready
    await bus.publish(envelope(happened(namespace)))  # connects on first use
    assert bus.ready
    assert bus.server_version
    await bus.close()
    assert not bus.ready
    with pytest.raises(RuntimeError):
        await bus.subscribe(happened(namespace), "g", Recorder())
