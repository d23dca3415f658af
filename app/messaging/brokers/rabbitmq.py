"""RabbitBus: the Bus protocol over RabbitMQ quorum queues, with plain aio-pika."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from yarl import URL

from app.bus import Backoff, DeadLetterSink, Envelope, Handler, deliver, hand_to_sink

log = logging.getLogger(__name__)

# set by a quorum queue on a redelivery: how often the message went back to the queue unacked
DELIVERY_COUNT = "x-delivery-count"
# at-least-once dead-lettering (x-dead-letter-strategy) came with 3.10; quorum queues with 3.8
MIN_VERSION = (3, 10)
SETTLE_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError)


class RabbitBus:
    """The bus on RabbitMQ (3.10+). What it guarantees, and how:

    - ``publish`` returns once the broker confirmed the message (publisher confirms): it is persistent
      and in every queue bound to its type, in that quorum queue's Raft log, written to a majority of
      its replicas (here a single node, so one disk). It raises on a nack, on no confirm within
      ``confirm_timeout`` and while the connection is down; a lost confirm may hide a stored message,
      so the caller's retry can duplicate it and inboxes absorb that. Hence ``durable = True``: the
      outbox relay marks a row sent at the confirm.
    - Topology, all durable: a topic exchange ``<ns>.events`` (routing key = event type), and per
      group a quorum queue ``<ns>.<group>`` bound to each type the group subscribes to. Every group
      gets every event published after its first ``subscribe`` bound its queue, also while none of
      its members runs; an event no queue is bound to is accepted and dropped.
    - Members of a group compete: processes share the group's queue, and in one process the
      ``subscribe`` calls for one (type, group) take turns. One consumer per queue per bus, with
      ``prefetch`` unacked messages at most, manual acks.
    - Order per subject holds within a consuming process: the queue hands messages over in order,
      they go to ``lanes`` sequential workers by ``hash(subject)``, and a failing handler is retried
      in place (``backoff``) so later events of its subject wait. Two processes of one group share the
      queue round-robin, so across them per-subject order is not kept.
    - ``attempt`` = the queue's ``x-delivery-count`` + 1, plus one per local retry. RabbitMQ 3.10
      counts every return of an unacked message, also a prefetched one the closed consumer never
      started, so it is an upper bound on handler calls. A delivery that fails on attempt
      ``max_attempts`` or later goes to the dead-letter sink ``(event, group, error)`` and is then
      rejected, so the queue dead-letters it (at least once) through ``<ns>.dlx`` into
      ``<ns>.<group>.dead`` for inspection. There is no broker-side delivery limit: a handler that
      kills the process is tried again on every restart.
    - ``close`` cancels the handlers in flight; their messages and the prefetched ones go back to the
      queue and come again to the next consumer (attempt + 1). On a lost connection aio-pika
      reconnects every 5 s and resumes consuming; deliveries of the lost channel still waiting in
      a lane are skipped, since the broker redelivers them.
    - A message of a type bound to the queue but with no handler in this process (a subscription that
      was dropped, or a backlog arriving between two ``subscribe`` calls) waits ``handler_grace``
      seconds for one, then is dead-lettered like a failing one. Unbind a dropped type by hand.
    """

    durable = True

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "eventcollab",
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        dead_letters: DeadLetterSink | None = None,
        prefetch: int = 256,
        lanes: int = 64,
        confirm_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        handler_grace: float = 5.0,
        delete_on_close: bool = False,
    ) -> None:
        """``delete_on_close`` deletes the exchanges and queues of the namespace that this bus
        declared when it closes: for tests, each with a namespace of its own."""
        self.url, self.namespace = url, namespace
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.prefetch, self.lanes = prefetch, lanes
        self.confirm_timeout, self.connect_timeout = confirm_timeout, connect_timeout
        self.handler_grace = handler_grace
        self.delete_on_close = delete_on_close
        self.server_version = ""
        self._sink = dead_letters
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._groups: dict[str, _Group] = {}
        self._connecting = asyncio.Lock()
        self._declaring = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, url: str, **options: Any) -> RabbitBus:
        bus = cls(url, **options)
        await bus.connect()
        return bus

    @property
    def exchange_name(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dlx_name(self) -> str:
        return f"{self.namespace}.dlx"

    def queue_name(self, group: str) -> str:
        return f"{self.namespace}.{group}"

    def dead_queue_name(self, group: str) -> str:
        return f"{self.namespace}.{group}.dead"

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self._groups)

    @property
    def ready(self) -> bool:
        c, ch = self._connection, self._channel
        return (
            not self._closed
            and c is not None
            and c.connected.is_set()
            and ch is not None
            and not ch.is_closed  # restored a moment after the connection: publish needs it
        )

    def expect_groups(self, expected: Mapping[str, Iterable[str]]) -> None:
        """Nothing to do: a group's durable queue keeps its events until the group subscribes."""

    def on_settled(self, source: str, listener: Callable[[Envelope], None]) -> None:
        """Never called back: the event is safe at the publish ack (``durable``)."""

    def waiting(self, group: str) -> int:
        g = self._groups.get(group)
        return sum(lane.qsize() for lane in g.lanes) if g is not None else 0

    async def connect(self) -> None:
        """Connect and declare the exchanges; at once if already connected. ``publish`` and
        ``subscribe`` call it, so a bus built without awaiting connects on first use."""
        async with self._connecting:
            if self._closed:
                raise RuntimeError("bus is closed")
            if self._connection is not None:
                return
            where = URL(self.url).with_password(None)
            try:
                connection = await aio_pika.connect_robust(
                    self.url,
                    timeout=self.connect_timeout,
                    client_properties={"connection_name": f"eventcollab {self.namespace}"},
                )
            except (OSError, TimeoutError) as exc:  # aiormq's AMQPConnectionError is a ConnectionError
                raise ConnectionError(f"RabbitMQ is not reachable at {where}: {exc}") from exc
            try:
                self.server_version = _server_version(connection)
                if _version_tuple(self.server_version) < MIN_VERSION:
                    raise RuntimeError(f"RabbitMQ {self.server_version} at {where}: RabbitBus needs 3.10+")
                channel = await connection.channel(publisher_confirms=True)
                self._exchange = await channel.declare_exchange(
                    self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
                await channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
            except BaseException:
                await connection.close()
                raise
            self._connection, self._channel = connection, channel

    async def publish(self, event: Envelope) -> None:
        if self._closed:
            raise RuntimeError("bus is closed")
        await self.connect()
        assert self._exchange is not None
        message = aio_pika.Message(
            event.to_json(),
            message_id=event.id,
            type=event.type,
            correlation_id=event.correlationid or None,
            content_type="application/cloudevents+json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"traceparent": event.traceparent} if event.traceparent else None,
        )
        # mandatory=False: an event no group subscribes to is accepted, not returned
        await self._exchange.publish(
            message, routing_key=event.type, mandatory=False, timeout=self.confirm_timeout
        )

    async def subscribe(self, event_type: str, group: str, handler: Handler) -> None:
        if self._closed:
            raise RuntimeError("bus is closed")
        await self.connect()
        assert self._connection is not None and self._exchange is not None
        async with self._declaring:
            g = self._groups.get(group)
            if g is None:
                g = await _Group.declare(self, self._connection, group)
                self._groups[group] = g
            await g.add(event_type, handler, self._exchange)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        workers = [w for g in self._groups.values() for w in g.workers]
        for w in workers:
            w.cancel()
        for w in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await w
        if self._connection is None:
            return
        try:
            if self.delete_on_close:
                await self._delete_declared()
        finally:
            await self._connection.close()

    async def _delete_declared(self) -> None:
        assert self._connection is not None
        for g in self._groups.values():
            await g.channel.close()  # consumers first, or the broker cancels them noisily
        channel = await self._connection.channel()
        for group in self._groups:
            for name in (self.queue_name(group), self.dead_queue_name(group)):
                await channel.queue_delete(name)
        for name in (self.exchange_name, self.dlx_name):
            await channel.exchange_delete(name)
        await channel.close()

    async def _dead_letter(self, event: Envelope, group: str, error: str) -> None:
        # a failing sink does not lose it: the message itself goes on to <ns>.<group>.dead
        await hand_to_sink(self._sink, event, group, error)


class _Group:
    """One group's queue in this process: one consumer, ``lanes`` workers, handlers by event type."""

    def __init__(self, bus: RabbitBus, name: str, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.bus, self.name, self.channel, self.queue = bus, name, channel, queue
        self.handlers: dict[str, list[Handler]] = {}
        self._turns: dict[str, int] = {}
        self._subscribed = asyncio.Condition()
        self._consuming = False
        self.lanes: list[asyncio.Queue[tuple[AbstractIncomingMessage, Envelope]]] = [
            asyncio.Queue() for _ in range(bus.lanes)
        ]
        self.workers = [asyncio.create_task(self._work(lane)) for lane in self.lanes]

    @classmethod
    async def declare(cls, bus: RabbitBus, connection: AbstractRobustConnection, name: str) -> _Group:
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=bus.prefetch)
            dead = await channel.declare_queue(
                bus.dead_queue_name(name), durable=True, arguments={"x-queue-type": "quorum"}
            )
            await dead.bind(bus.dlx_name, routing_key=name)
            queue = await channel.declare_queue(
                bus.queue_name(name),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": bus.dlx_name,
                    "x-dead-letter-routing-key": name,
                    # at-least-once dead-lettering holds a rejected message until <ns>.<group>.dead
                    # confirmed it; it works only with reject-publish overflow
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        except BaseException:
            await channel.close()
            raise
        return cls(bus, name, channel, queue)

    async def add(self, event_type: str, handler: Handler, exchange: AbstractExchange) -> None:
        first = event_type not in self.handlers
        async with self._subscribed:
            self.handlers.setdefault(event_type, []).append(handler)
            self._subscribed.notify_all()
        if first:
            await self.queue.bind(exchange, routing_key=event_type)
        if not self._consuming:
            await self.queue.consume(self._on_message)
            self._consuming = True

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aio-pika runs this as one task per message, in arrival order: nothing may await before the
        # put, or messages could overtake each other on the way to their lane
        try:
            event = Envelope.from_json(message.body)
        except Exception as exc:
            log.error("rejecting an unreadable message %s in %s: %s", message.message_id, self.name, exc)
            await _settle(message.reject(requeue=False), message)
            return
        self.lanes[hash(event.subject or event.id) % len(self.lanes)].put_nowait((message, event))

    async def _work(self, lane: asyncio.Queue[tuple[AbstractIncomingMessage, Envelope]]) -> None:
        while True:
            message, event = await lane.get()
            if _stale(message):
                continue  # its channel is gone; the broker redelivers it on the new one
            await self._deliver(message, event)

    async def _deliver(self, message: AbstractIncomingMessage, event: Envelope) -> None:
        count = (message.headers or {}).get(DELIVERY_COUNT)
        attempt = int(count) + 1 if isinstance(count, int) else 1
        event_type = message.routing_key or event.type
        # checked once: handlers are never removed, so every retry below finds one too
        if not await self._has_member(event_type):
            error = f"no handler for {event_type} in group {self.name}"
            await self._give_up(message, event.delivered(attempt), error)
            return
        handled = await deliver(
            event,
            self.name,
            attempt,
            member=partial(self._member, event_type),
            max_attempts=self.bus.max_attempts,
            backoff=self.bus.backoff,
            give_up=partial(self._give_up, message),
        )
        if handled:
            await _settle(message.ack(), message)

    async def _has_member(self, event_type: str) -> bool:
        """Whether a handler of ``event_type`` is (or within the grace becomes) subscribed here."""
        if not self.handlers.get(event_type):
            async with self._subscribed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._subscribed.wait_for(lambda: bool(self.handlers.get(event_type))),
                        self.bus.handler_grace,
                    )
        return bool(self.handlers.get(event_type))

    def _member(self, event_type: str) -> Handler:
        # members of a group compete: each delivery attempt goes to one of them, in turn
        members = self.handlers[event_type]
        turn = self._turns.get(event_type, 0)
        self._turns[event_type] = turn + 1
        return members[turn % len(members)]

    async def _give_up(self, message: AbstractIncomingMessage, event: Envelope, error: str) -> None:
        await self.bus._dead_letter(event, self.name, error)
        await _settle(message.reject(requeue=False), message)


async def _settle(action: Awaitable[None], message: AbstractIncomingMessage) -> None:
    try:
        await action
    except SETTLE_ERRORS as exc:
        # the channel is gone: the broker puts the message back and delivers it again
        log.warning("could not settle message %s (%s); it will be redelivered", message.message_id, exc)


def _stale(message: AbstractIncomingMessage) -> bool:
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:
        return True


def _server_version(connection: AbstractRobustConnection) -> str:
    transport = connection.transport
    version = transport.connection.server_properties.get("version") if transport else None
    return version.decode() if isinstance(version, bytes) else str(version or "")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])
