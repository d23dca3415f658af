"""NatsBus: the Bus protocol over NATS JetStream, with plain nats-py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from nats.aio.client import Client
from nats.errors import NoServersError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from app.bus import Backoff, DeadLetterSink, Envelope, Handler, hand_to_sink
from app.messaging.brokers.nats_consumer import Consumer, ConsumerOptions

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class NatsBus:
    """The bus on a NATS JetStream server (2.9 or later; no 2.10 feature is used).

    Layout, per ``namespace``: one stream ``<ns>`` (file storage, ``replicas`` copies, subjects
    ``<ns>.ev.>``, kept ``max_age``), an event of type ``t`` on subject ``<ns>.ev.<t>``; one durable pull
    consumer ``<group>-<t>`` (dots as ``_``) per group and event type, explicit ack, filtered on that one
    subject; dead letters also go to stream ``<ns>_DLQ`` on ``<ns>.dlq.<group>.<t>`` (same settings),
    for inspection. Streams that exist already are used as they are.

    Guarantees, and what they rest on:

    - ``publish`` returns once JetStream has answered with a PubAck, so the event is in the stream;
      it raises on an error or after ``publish_timeout`` (the relay retries). The header
      ``Nats-Msg-Id`` = event id makes the stream drop a second copy within ``duplicate_window``; a
      republish after that is stored again and absorbed by the consumers' inboxes.
    - Every group gets every event: each group has its own durable consumer. A group that subscribes
      for the first time starts at the oldest event still in the stream (deliver policy ``all``), so
      start-up order between processes loses nothing; inboxes make the replays harmless.
    - Members of a group compete: one pull consumer per (group, type) in a process, its deliveries
      handed out round robin; other processes on the same durable take their own share.
    - Order per subject (``Envelope.subject``) within a group, inside one process: fetched events go
      to ``partitions`` lanes by hash of the subject, each lane handles one event at a time and retries
      a failing one in place, with the backoff, before the next. Several processes on one group split
      a subject's events between them, so across processes order is not kept.
    - Attempts: the first handler call of a delivery sees JetStream's ``num_delivered`` (1 unless the
      server redelivered), each in-place retry adds one. The server does not hear of in-place retries,
      so a redelivery after a crash counts on from ``num_delivered``, not from the last attempt seen:
      across crashes a handler may be called more than ``max_attempts`` times, but every delivery
      raises the count, so a poison event still ends in the dead letters. At ``max_attempts`` a failing
      event goes to the sink, then to ``<ns>_DLQ``, then is acked.
    - Held events are kept alive with ``in_progress`` every ``ack_wait / 3``: a slow handler or a long
      retry does not get the event redelivered behind its back. Without that heartbeat (a crash, a
      lost connection), the server redelivers after ``ack_wait``. ``close`` naks what it held, so a
      restart gets them at once, each counting one more delivery.
    - An ack is published, not sent as a request and awaited (measured here: 45 -> 20 µs of client CPU
      per delivery, and no reply for the server to send); a lost ack means a redelivery after
      ``ack_wait``, absorbed by the inbox, as it did when an awaited ack timed out.

    Production server settings: a PubAck from a file stream means written, not fsynced. JetStream
    fsyncs on a timer (``sync_interval``, 2 min by default), and Jepsen's analysis of NATS 2.12.1
    found acknowledged writes lost after power loss with the default. Since the outbox forgets a row
    at the PubAck, run ``jetstream { sync_interval: always }`` (servers after 2.9; 2.9.10 rejects the
    field), or a 3-node cluster with ``replicas=3`` (acked once two nodes hold it: survives losing a
    node, not a power cut of all three), preferably both. Size ``max_age`` above the longest time a
    group may be down: a consumer that comes back later finds its oldest events gone.
    """

    durable = True

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        namespace: str = "eventcollab",
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        dead_letters: DeadLetterSink | None = None,
        ack_wait: float = 30.0,
        replicas: int = 1,
        max_age: float = 7 * 24 * 3600.0,
        duplicate_window: float = 120.0,
        partitions: int = 64,
        batch: int = 256,
        max_in_flight: int = 1024,
        publish_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        delete_on_close: bool = False,
    ) -> None:
        if not _TOKEN.fullmatch(namespace):
            raise ValueError(f"namespace must match {_TOKEN.pattern}, not {namespace!r}")
        self.url, self.namespace = url, namespace
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.ack_wait, self.replicas = ack_wait, replicas
        self.max_age, self.duplicate_window = max_age, duplicate_window
        self.partitions, self.batch, self.max_in_flight = partitions, batch, max_in_flight
        self.publish_timeout, self.connect_timeout = publish_timeout, connect_timeout
        self.stream, self.dlq_stream = namespace, f"{namespace}_DLQ"
        self.delete_on_close = delete_on_close
        self._sink = dead_letters
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._groups: dict[tuple[str, str], Consumer] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, url: str = "nats://127.0.0.1:4222", **options: Any) -> NatsBus:
        bus = cls(url, **options)
        await bus.connect()
        return bus

    async def connect(self) -> None:
        """Connect and create the streams if missing. ``publish`` and ``subscribe`` call it on first
        use; once connected, nats-py reconnects on its own for as long as the bus is open."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("bus is closed")
            if self._nc is not None:
                return
            nc = Client()
            try:
                await asyncio.wait_for(
                    nc.connect(
                        self.url,
                        name=f"eventcollab:{self.namespace}",
                        connect_timeout=max(1, int(self.connect_timeout)),
                        # in nats-py this bounds the first connect too: give up after one retry ...
                        max_reconnect_attempts=1,
                        reconnect_time_wait=1,
                        error_cb=self._on_error,
                        disconnected_cb=self._on_disconnected,
                        reconnected_cb=self._on_reconnected,
                    ),
                    self.connect_timeout,
                )
            except (TimeoutError, OSError, NoServersError) as exc:
                raise ConnectionError(f"no NATS server at {self.url} ({type(exc).__name__})") from exc
            # ... and once connected, reconnect for as long as the bus is open
            nc.options["max_reconnect_attempts"] = -1
            js = nc.jetstream(timeout=self.publish_timeout)
            try:
                await self._ensure_stream(js, self.stream, f"{self.namespace}.ev.>")
                await self._ensure_stream(js, self.dlq_stream, f"{self.namespace}.dlq.>")
            except BaseException:
                await nc.close()
                raise
            self._nc, self._js = nc, js

    @property
    def ready(self) -> bool:
        return not self._closed and self._nc is not None and self._nc.is_connected

    def expect_groups(self, expected: Mapping[str, Iterable[str]]) -> None:
        """Nothing to do: a group's durable consumer keeps its events until the group subscribes."""

    def on_settled(self, source: str, listener: Callable[[Envelope], None]) -> None:
        """Never called back: the event is safe at the publish ack (``durable``)."""

    def waiting(self, group: str) -> int:
        return sum(c.waiting() for (_, g), c in self._groups.items() if g == group)

    async def publish(self, event: Envelope) -> None:
        js = await self._jetstream()
        headers = {"Nats-Msg-Id": event.id}
        if event.traceparent:  # W3C trace context, also for broker-side tooling
            headers["traceparent"] = event.traceparent
        await js.publish(
            self._subject(event.type),
            event.to_json(),
            timeout=self.publish_timeout,
            stream=self.stream,
            headers=headers,
        )

    async def subscribe(self, event_type: str, group: str, handler: Handler) -> None:
        if not _TOKEN.fullmatch(group):
            raise ValueError(f"group must match {_TOKEN.pattern}, not {group!r}")
        subject = self._subject(event_type)
        js = await self._jetstream()
        assert self._nc is not None
        key = (event_type, group)
        consumer = self._groups.get(key)
        if consumer is not None:
            consumer.members.append(handler)
            return
        consumer = self._groups[key] = Consumer(
            self._consumer_options(),
            group,
            self.consumer_name(event_type, group),
            partial(self._dead_letter, group=group),
        )
        consumer.members.append(handler)
        try:
            await self._ensure_consumer(js, consumer.name, subject, f"group {group} on {event_type}")
            await consumer.start(self._nc)
        except BaseException:
            del self._groups[key]
            raise

    def _consumer_options(self) -> ConsumerOptions:
        return ConsumerOptions(
            stream=self.stream,
            partitions=self.partitions,
            batch=self.batch,
            max_in_flight=self.max_in_flight,
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            ack_wait=self.ack_wait,
            publish_timeout=self.publish_timeout,
        )

    @staticmethod
    def consumer_name(event_type: str, group: str) -> str:
        return f"{group}-{event_type}".replace(".", "_")

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
        await asyncio.gather(*(c.stop() for c in self._groups.values()))
        if self.delete_on_close and self._js is not None:
            for stream in (self.stream, self.dlq_stream):
                with contextlib.suppress(Exception):
                    await self._js.delete_stream(stream)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=1)
            await self._nc.close()

    async def _dead_letter(self, event: Envelope, error: str, *, group: str) -> None:
        """Hand ``event`` (its ``attempt`` set) to the sink, then keep a copy in ``<ns>_DLQ``."""
        await hand_to_sink(self._sink, event, group, error)
        try:
            assert self._js is not None
            await self._js.publish(
                f"{self.namespace}.dlq.{group}.{event.type}",
                event.to_json(),
                timeout=self.publish_timeout,
                stream=self.dlq_stream,
                headers={
                    "Nats-Msg-Id": f"{event.id}.{group}",
                    "Eventcollab-Group": group,
                    "Eventcollab-Attempt": str(event.attempt),
                    # a header value is one line
                    "Eventcollab-Error": " ".join(error.split())[:1000],
                },
            )
        except Exception:
            log.exception("could not copy dead letter %s to %s", event.id, self.dlq_stream)

    async def _jetstream(self) -> JetStreamContext:
        if self._closed:
            raise RuntimeError("bus is closed")
        if self._js is None:
            await self.connect()
        assert self._js is not None
        return self._js

    def _subject(self, event_type: str) -> str:
        if not _EVENT_TYPE.fullmatch(event_type):
            raise ValueError(f"event type must be dot-separated tokens, not {event_type!r}")
        return f"{self.namespace}.ev.{event_type}"

    async def _ensure_stream(self, js: JetStreamContext, name: str, subjects: str) -> None:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=[subjects],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    num_replicas=self.replicas,
                    max_age=self.max_age,
                    duplicate_window=self.duplicate_window,
                )
            )
            return
        # its operator may have tuned it (nats stream edit): say so, change nothing
        if info.config.num_replicas != self.replicas:
            log.warning(
                "stream %s has %s replicas, not the %d asked for: left as it is",
                name,
                info.config.num_replicas,
                self.replicas,
            )

    async def _ensure_consumer(self, js: JetStreamContext, name: str, subject: str, description: str) -> None:
        try:
            info = await js.consumer_info(self.stream, name)
        except NotFoundError:
            pass
        else:
            if info.config.filter_subject != subject:
                raise ValueError(
                    f"consumer {name} already filters {info.config.filter_subject}, not {subject}"
                )
        # creates it, or updates ack_wait and max_ack_pending of an existing one (2.9 allows both)
        await js.add_consumer(
            self.stream,
            ConsumerConfig(
                name=name,
                durable_name=name,
                description=description,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait,
                max_deliver=-1,
                filter_subject=subject,
                # room for several processes, each holding up to max_in_flight
                max_ack_pending=self.max_in_flight * 16,
            ),
        )

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats %s: %s", self.url, exc)

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("nats %s: disconnected, reconnecting", self.url)

    async def _on_reconnected(self) -> None:
        log.warning("nats %s: reconnected", self.url)
