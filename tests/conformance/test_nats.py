"""What the NATS adapter adds to the shared suite: the PubAck, broker-side dedupe, durable consumers
across restarts and crashes, ack deadlines kept alive, dead letters kept in a stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from app.bus import Envelope
from app.messaging.brokers.nats import NatsBus
from tests.conformance.conftest import BACKOFF, MAX_ATTEMPTS, Recorder, envelope
from tests.support.brokers import remaining
from tests.support.poll import until

NATS_URL = "nats://127.0.0.1:4222"
START_NATS = (
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
    "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
)
# short, so a redelivery after a crash comes within a test's patience
ACK_WAIT = 1.0
REPO = Path(__file__).resolve().parents[2]


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _reachable(), reason=f"NATS is not running on 127.0.0.1:4222; start it with: {START_NATS}"
)


@pytest.fixture
async def js(namespace: str) -> AsyncIterator[JetStreamContext]:
    """A plain JetStream client to look at the broker; the namespace's streams go when the test ends."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        yield js
    finally:
        for stream in (namespace, f"{namespace}_DLQ"):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
        await nc.close()
    left = await remaining(NATS_URL, namespace, ())
    assert not left, f"namespace {namespace} left behind: {left}"


@contextlib.asynccontextmanager
async def opened(namespace: str, **options: Any) -> AsyncIterator[NatsBus]:
    options = {"max_attempts": MAX_ATTEMPTS, "backoff": BACKOFF, "ack_wait": ACK_WAIT, **options}
    bus = await NatsBus.open(NATS_URL, namespace=namespace, **options)
    try:
        yield bus
    finally:
        await bus.close()


def happened(namespace: str) -> str:
    return f"{namespace}.happened.v1"


async def settled(js: JetStreamContext, namespace: str, group: str) -> bool:
    """The group's consumer has nothing left to deliver and nothing delivered but unacked."""
    info: ConsumerInfo = await js.consumer_info(namespace, NatsBus.consumer_name(happened(namespace), group))
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_publish_returns_once_the_stream_holds_the_event(js: JetStreamContext, namespace: str) -> None:
    async with opened(namespace) as bus:
        event = envelope(happened(namespace), subject="s", n=1)
        await bus.publish(event)
        # no polling: the PubAck came before publish returned
        stored = await js.get_msg(namespace, subject=f"{namespace}.ev.{event.type}")
    assert stored.data is not None and Envelope.from_json(stored.data) == event
    assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == event.id


async def test_a_traceparent_rides_in_the_message_headers_too(js: JetStreamContext, namespace: str) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with opened(namespace) as bus:
        event = replace(envelope(happened(namespace), subject="s"), traceparent=traceparent)
        await bus.publish(event)
        stored = await js.get_msg(namespace, subject=f"{namespace}.ev.{event.type}")
    assert stored.headers is not None and stored.headers["traceparent"] == traceparent
    assert stored.data is not None and Envelope.from_json(stored.data).traceparent == traceparent


async def test_the_same_event_id_published_twice_is_stored_once(js: JetStreamContext, namespace: str) -> None:
    async with opened(namespace) as bus:
        event = envelope(happened(namespace), subject="s")
        await bus.publish(event)
        await bus.publish(event)
        await bus.publish(envelope(happened(namespace), subject="s"))
    assert (await js.stream_info(namespace)).state.messages == 2


async def test_a_restarted_consumer_resumes_without_loss_and_without_redelivering_acked_events(
    js: JetStreamContext, namespace: str
) -> None:
    before = [envelope(happened(namespace), subject="s", n=i) for i in range(5)]
    after = [envelope(happened(namespace), subject="s", n=i) for i in range(5, 10)]
    first = Recorder()
    async with opened(namespace) as bus:
        await bus.subscribe(happened(namespace), "g", first)
        for event in before:
            await bus.publish(event)
        await until(lambda: len(first) == len(before))
        await until(lambda: settled(js, namespace, "g"))
    async with opened(namespace) as bus:
        # published while no member of the group runs
        for event in after:
            await bus.publish(event)
        second = Recorder()
        await bus.subscribe(happened(namespace), "g", second)
        await until(lambda: len(second) == len(after))
        await until(lambda: settled(js, namespace, "g"))
    assert first.ids == [e.id for e in before]
    assert second.ids == [e.id for e in after]
    info = await js.consumer_info(namespace, NatsBus.consumer_name(happened(namespace), "g"))
    assert info.num_redelivered == 0


async def test_events_a_closed_bus_held_come_back_at_once_in_order_with_the_next_attempt(
    js: JetStreamContext, namespace: str
) -> None:
    entered = asyncio.Event()

    async def stuck(event: Envelope) -> None:
        entered.set()
        await asyncio.Event().wait()

    sent = [envelope(happened(namespace), subject="s", n=i) for i in range(3)]
    # an ack_wait no test waits for: only the naks sent by close can bring them back in time
    async with opened(namespace, ack_wait=60) as bus:
        await bus.subscribe(happened(namespace), "g", stuck)
        for event in sent:
            await bus.publish(event)
        await until(entered.is_set)
    again = Recorder()
    async with opened(namespace, ack_wait=60) as bus:
        await bus.subscribe(happened(namespace), "g", again)
        await until(lambda: len(again) == len(sent))
    assert again.ids == [e.id for e in sent]
    # the two queued behind the stuck one never reached a handler, yet their delivery counted
    assert [e.attempt for e in again.handled] == [2, 2, 2]


CRASHING_CONSUMER = """
import asyncio, sys
from app.messaging.brokers.nats import NatsBus

async def main() -> None:
    url, namespace, event_type = sys.argv[1:4]
    bus = await NatsBus.open(url, namespace=namespace, ack_wait=float(sys.argv[4]))

    async def stuck(event):
        print(event.id, flush=True)
        await asyncio.Event().wait()

    await bus.subscribe(event_type, "g", stuck)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.subprocess
async def test_an_event_held_by_a_killed_process_comes_back_after_ack_wait_with_attempt_2(
    js: JetStreamContext, namespace: str
) -> None:
    event = envelope(happened(namespace), subject="s")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_CONSUMER,
        NATS_URL,
        namespace,
        happened(namespace),
        str(ACK_WAIT),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        async with opened(namespace) as bus:
            await bus.publish(event)
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=15)
        assert line.decode().strip() == event.id
    finally:
        child.kill()  # kill -9: no nak, no close; only ack_wait brings the event back
        await child.wait()
    again = Recorder()
    async with opened(namespace) as bus:
        await bus.subscribe(happened(namespace), "g", again)
        await until(lambda: len(again) == 1, timeout=10)
    assert again.ids == [event.id]
    assert again.handled[0].attempt == 2


async def test_a_handler_slower_than_ack_wait_is_not_given_the_event_twice(
    js: JetStreamContext, namespace: str
) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    deliveries: list[Envelope] = []
    twice = asyncio.Event()

    async def slow(event: Envelope) -> None:
        deliveries.append(event)
        if len(deliveries) > 1:
            twice.set()
        entered.set()
        await gate.wait()

    async with opened(namespace) as bus:
        await bus.subscribe(happened(namespace), "g", slow)
        await bus.publish(envelope(happened(namespace), subject="s"))
        await until(entered.is_set)
        # three ack deadlines pass while the handler runs; the heartbeat keeps the event ours
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(twice.wait(), timeout=3 * ACK_WAIT)
        gate.set()
        await until(lambda: settled(js, namespace, "g"))
    assert len(deliveries) == 1
    info = await js.consumer_info(namespace, NatsBus.consumer_name(happened(namespace), "g"))
    assert info.num_redelivered == 0


async def test_a_dead_letter_is_acked_and_kept_in_the_dlq_stream(
    js: JetStreamContext, namespace: str
) -> None:
    letters: list[tuple[Envelope, str, str]] = []

    async def sink(event: Envelope, group: str, error: str) -> None:
        letters.append((event, group, error))

    poison = envelope(happened(namespace), subject="s")
    async with opened(namespace, dead_letters=sink) as bus:
        await bus.subscribe(happened(namespace), "g", Recorder(fail_if=lambda e: True))
        await bus.publish(poison)
        await until(lambda: letters)
        await until(lambda: settled(js, namespace, "g"))
    kept = await js.get_msg(f"{namespace}_DLQ", subject=f"{namespace}.dlq.g.{poison.type}")
    assert kept.data is not None and Envelope.from_json(kept.data) == poison
    assert kept.headers is not None
    assert kept.headers["Eventcollab-Group"] == "g"
    assert kept.headers["Eventcollab-Attempt"] == str(MAX_ATTEMPTS)
    assert f"refused {poison.id} on attempt {MAX_ATTEMPTS}" in kept.headers["Eventcollab-Error"]


async def test_buses_in_two_processes_share_a_group_s_durable_consumer(
    js: JetStreamContext, namespace: str
) -> None:
    sent = [envelope(happened(namespace), subject=f"s{i}") for i in range(40)]
    one, other = Recorder(), Recorder()
    # small pull batches, so neither bus takes every event in one request
    async with opened(namespace, batch=2) as a, opened(namespace, batch=2) as b:
        await a.subscribe(happened(namespace), "g", one)
        await b.subscribe(happened(namespace), "g", other)
        for event in sent:
            await a.publish(event)
        await until(lambda: len(one) + len(other) == len(sent))
    assert set(one.ids).isdisjoint(other.ids)
    assert set(one.ids) | set(other.ids) == {e.id for e in sent}
    assert one.handled and other.handled
