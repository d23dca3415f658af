"""The consuming side of NatsBus: one pull consumer per (group, event type) in a process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from app.bus import Backoff, Envelope, Handler, deliver

log = logging.getLogger(__name__)

GiveUp = Callable[[Envelope, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """What a consumer takes from its bus (see NatsBus for each one's meaning)."""

    stream: str
    partitions: int
    batch: int
    max_in_flight: int
    max_attempts: int
    backoff: Backoff
    ack_wait: float
    publish_timeout: float


# a pull request lingers this long on the server when there is nothing to fetch; close may wait as long
PULL_EXPIRES = 1.0


class Consumer:
    """One group on one event type in this process: a pull loop that keeps up to ``max_in_flight``
    events held, ``partitions`` lanes that each handle one event at a time, and a heartbeat that
    keeps every held event's ack deadline from running out."""

    def __init__(self, options: ConsumerOptions, group: str, name: str, give_up: GiveUp) -> None:
        self.options, self.group, self.name, self.give_up = options, group, name, give_up
        self.members: list[Handler] = []
        self._next = 0
        # stream sequence -> the newest delivery of that event: acks and heartbeats answer it
        self.held: dict[int, Msg] = {}
        self._lanes: list[asyncio.Queue[tuple[int, Envelope]]] = [
            asyncio.Queue() for _ in range(options.partitions)
        ]
        self._room = asyncio.Event()
        self._answered = asyncio.Event()
        self._outstanding = 0
        self._refused = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None

    def waiting(self) -> int:
        """Events fetched and waiting in the lanes for a handler."""
        return sum(lane.qsize() for lane in self._lanes)

    async def start(self, nc: Client) -> None:
        inbox = nc.new_inbox()
        self._sub = await nc.subscribe(inbox, cb=self._on_message)
        self._room.set()
        self._heartbeat = asyncio.create_task(self._keep_alive(), name=f"nats-heartbeat-{self.name}")
        self._tasks = [
            asyncio.create_task(self._pull(nc, inbox), name=f"nats-pull-{self.name}"),
            *(asyncio.create_task(self._work(lane)) for lane in self._lanes),
        ]

    async def stop(self) -> None:
        """Stop handling, then nak what is still held, in stream order, so the next consumer of the
        group gets it at once and in that order rather than after ``ack_wait``."""
        await _cancel(self._tasks)
        if self.held and self._outstanding > 0:
            # nats-server 2.9 hands naked events to a pull request still open, even one whose inbox
            # is gone (measured: they stay lost until ack_wait), so let ours run out first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), PULL_EXPIRES + 1)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        for seq in sorted(self.held):
            with contextlib.suppress(Exception):
                await self.held[seq].nak()
        self.held.clear()
        if self._heartbeat is not None:
            await _cancel([self._heartbeat])

    async def _pull(self, nc: Client, inbox: str) -> None:
        request = f"$JS.API.CONSUMER.MSG.NEXT.{self.options.stream}.{self.name}"
        while True:
            await self._room.wait()
            want = min(self.options.batch, self.options.max_in_flight - len(self.held))
            if want <= 0:
                self._room.clear()
                continue
            self._outstanding, self._refused = want, ""
            self._answered.clear()
            try:
                await nc.publish(
                    request,
                    orjson.dumps({"batch": want, "expires": int(PULL_EXPIRES * 1e9)}),
                    reply=inbox,
                )
                # no answer at all (a reconnect lost the request): ask again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._answered.wait(), PULL_EXPIRES + 1)
            except Exception as exc:
                self._refused = f"{type(exc).__name__}: {exc}"
            if self._refused:
                log.warning("pull from %s refused (%s); asking again in 1s", self.name, self._refused)
                await asyncio.sleep(1)

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._outstanding -= 1
            await self._take(msg)
        elif status == "100":  # idle heartbeat
            return
        else:
            # 404 no messages, 408 request expired: the request is over; anything else is a refusal
            if status not in ("404", "408"):
                self._refused = f"{status} {msg.headers.get('Description', '') if msg.headers else ''}"
            self._outstanding = 0
        if self._outstanding <= 0:
            self._answered.set()

    async def _take(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq in self.held:
            # redelivered while still held here (a heartbeat came too late): keep one copy
            self.held[seq] = msg
            return
        try:
            event = Envelope.from_json(msg.data)
        except Exception:
            log.exception("%s: stream message %d is not an event; terminated", self.name, seq)
            await msg.term()
            return
        self.held[seq] = msg
        self._lanes[hash(event.subject or event.id) % len(self._lanes)].put_nowait((seq, event))

    async def _work(self, lane: asyncio.Queue[tuple[int, Envelope]]) -> None:
        while True:
            seq, event = await lane.get()
            await self._deliver(seq, event)
            self.held.pop(seq, None)
            self._room.set()

    async def _deliver(self, seq: int, event: Envelope) -> None:
        await deliver(
            event,
            self.group,
            self.held[seq].metadata.num_delivered,
            member=self._member,
            max_attempts=self.options.max_attempts,
            backoff=self.options.backoff,
            give_up=self.give_up,
        )
        try:
            # published, not awaited as a request: see NatsBus's docstring
            await self.held[seq].ack()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "ack of %s by %s failed (%s): it comes again, the inbox absorbs it", event.id, self.group, exc
            )

    def _member(self) -> Handler:
        handler = self.members[self._next % len(self.members)]
        self._next += 1
        return handler

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.options.ack_wait / 3)
            for msg in list(self.held.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        # asyncio.wait_for on 3.11 drops a cancel that lands as its reply arrives (cpython#86296),
        # which nats-py's request (our ack) goes through: cancel again until the task is gone
        _, pending = await asyncio.wait(pending, timeout=0.1)
