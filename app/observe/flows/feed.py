"""Whole flows in the distributed topology: every process that consumes sends its observer reports to the
console (``CONSUME=0``), which replays them into its own flow recorder, so ``/flows`` at the front shows
each flow's hops from every process (``FLOWS_FEED=1``).

The feed rides core NATS on the bus's server, subject ``<BUS_NAMESPACE>.flows`` (outside the
namespace's JetStream subjects ``<ns>.ev.>`` / ``<ns>.dlq.>``, so nothing stores it): observability,
not business data. It is lossy by design: a report is dropped (and counted) when the sender's buffer
is full, when the connection is down past nats-py's pending buffer, when the console is not
subscribed (not started yet, restarting), or when the console falls behind (NATS cuts a slow
consumer off). Nothing on the hot path blocks, allocates more than one tuple, or raises.

A report travels as ``[name, at, arg...]``, ``at`` the sender's ``time.time()`` when it was made (the
console stamps replayed hops with it, so hops of several processes sort by when they happened), each
argument by its type: an :class:`Envelope` as its wire JSON and its attempt, an :class:`HttpExchange`
as its fields, ``str``/``int``/``float``/``None`` as they are. Any report in ``Observers``' list goes
through without a change here; one whose arguments are of another type is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import MethodType
from typing import Any

import orjson

from app.bus import Envelope
from app.config import Settings
from app.observe.flows.recorder import FlowRecorder
from app.observe.observers import _REPORTS, HttpExchange, Observers

log = logging.getLogger(__name__)

Report = tuple[str, float, tuple[object, ...]]
# a batch every 25 ms or 200 reports, whichever comes first: an order makes ~15 reports across the
# processes, so at the ~700 orders/s one process sustains a busy sender fills a batch every ~20 ms
INTERVAL, BATCH = 0.025, 200
# ~10 s of a busy process's reports (at ~400 a second each); past it reports are dropped and counted
MAX_BUFFER = 4096
WARN_EVERY = 10.0  # seconds between two warnings about dropped reports


def subject(namespace: str) -> str:
    return f"{namespace}.flows"


def encode(name: str, at: float, args: Sequence[object]) -> list[Any] | None:
    """One report as JSON-ready values; None when an argument is of no type the feed carries."""
    out: list[Any] = [name, at]
    for arg in args:
        if isinstance(arg, Envelope):
            # the wire JSON as it is: no second encoding of the event (orjson splices the bytes in)
            out.append({"envelope": orjson.Fragment(arg.to_json()), "attempt": arg.attempt})
        elif isinstance(arg, HttpExchange):
            out.append({"http": arg._asdict()})
        elif arg is None or isinstance(arg, str | int | float):
            out.append(arg)
        else:
            return None
    return out


def decode(item: list[Any]) -> Report:
    """The report ``encode`` made: name, time, arguments. Raises (KeyError, TypeError, ValueError) on
    what no encoder made."""
    name, at, *raw = item
    if not isinstance(name, str) or not isinstance(at, int | float):
        raise ValueError(f"not a report: {item[:2]!r}")
    return name, float(at), tuple(_argument(a) for a in raw)


def _argument(value: Any) -> object:
    if not isinstance(value, dict):
        return value
    if "envelope" in value:
        # through from_json, the one reader of the wire form (a re-encoding: on the console, not the hot path)
        return Envelope.from_json(orjson.dumps(value["envelope"])).delivered(int(value["attempt"]))
    if "http" in value:
        return HttpExchange(**value["http"])
    raise ValueError(f"an argument of no known kind: {sorted(value)}")


def batch(reports: Sequence[Report]) -> tuple[bytes, int]:
    """One message of ``reports``, and how many of them it had to leave out."""
    encoded = [e for name, at, args in reports if (e := encode(name, at, args)) is not None]
    return orjson.dumps({"reports": encoded}), len(reports) - len(encoded)


def unbatch(message: bytes) -> list[list[Any]]:
    reports = orjson.loads(message)["reports"]
    if not isinstance(reports, list):
        raise ValueError("reports is not a list")
    return reports


async def connect_core(url: str, name: str) -> Any:
    """A core NATS connection of its own (the feed's, the lab's): one retry at first, then for ever."""
    from nats.aio.client import Client
    from nats.errors import SlowConsumerError

    warned = [0.0]

    async def quiet(exc: Exception) -> None:
        # the console fell behind: nats-py drops each message that does not fit (and says so, per message)
        if isinstance(exc, SlowConsumerError):
            if time.monotonic() - warned[0] > WARN_EVERY:
                warned[0] = time.monotonic()
                log.warning("flow feed: the console is behind, batches of reports dropped (%s)", exc)
            return
        # the bus's own connection to the same server says loudly when it is gone
        log.debug("flow feed connection: %s", exc)

    nc = Client()
    # in nats-py this bounds the first connect too: give up after one retry, then reconnect for ever
    await nc.connect(url, name=name, connect_timeout=2, max_reconnect_attempts=1, error_cb=quiet)
    nc.options["max_reconnect_attempts"] = -1
    return nc


class FlowFeed:
    """An Observer that sends every report, in batches, to the console. Its report methods are made
    from ``Observers``' list of reports, so a new report is sent without a change here."""

    def __init__(self, url: str, subject: str, *, max_buffer: int = MAX_BUFFER) -> None:
        self.url, self.subject, self.max_buffer = url, subject, max_buffer
        # deque: append and popleft are atomic, so a report from another thread is safe as well
        self._buffer: deque[Report] = deque()
        self.sent = self.dropped = 0
        self._nc: Any = None
        self._task: asyncio.Task[None] | None = None
        self._warned, self._told = 0.0, 0  # when the last warning of drops was, and how many it told

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in _REPORTS:
            raise AttributeError(name)

        def report(feed: FlowFeed, *args: object) -> None:
            feed._put(name, args)

        # bound, so Observers' log line can name the observer (call.__self__)
        return MethodType(report, self)

    def _put(self, name: str, args: tuple[object, ...]) -> None:
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        self._buffer.append((name, time.time(), args))

    async def start(self) -> None:
        self._nc = await connect_core(self.url, f"eventcollab-flows:{self.subject}")
        self._task = asyncio.create_task(self._run(), name="flow feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nc is not None:
            await self.flush()  # what the last moments reported
            with contextlib.suppress(Exception):
                await self._nc.drain()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)  # the batching interval: a tick, not a wait for a condition
            await self.flush()

    async def flush(self) -> None:
        """Send what the buffer holds, ``BATCH`` reports a message; a message that cannot go is dropped."""
        while self._buffer:
            reports = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
            try:
                message, left_out = batch(reports)
                # core NATS: queued on the connection (nats-py's pending buffer), no acknowledgement
                await self._nc.publish(self.subject, message)
            except Exception as exc:
                self.dropped += len(reports)
                log.debug("flow feed: %d reports not sent (%s)", len(reports), exc)
                continue
            self.sent += len(reports) - left_out
            self.dropped += left_out
        if self.dropped > self._told and time.monotonic() - self._warned > WARN_EVERY:
            self._warned, self._told = time.monotonic(), self.dropped
            log.warning("flow feed: %d reports dropped so far (%d sent)", self.dropped, self.sent)


class FeedReplayer:
    """The console's end: each report received is replayed into ``recorder`` only (not into this
    process's metrics or logs: the process that made it counted it), stamped with its sender's time."""

    def __init__(self, url: str, subject: str, recorder: FlowRecorder) -> None:
        self.url, self.subject, self.recorder = url, subject, recorder
        self.replayed = self.refused = 0
        self._at: float | None = None
        recorder.now = self._now
        self._nc: Any = None

    def _now(self) -> float:
        return time.time() if self._at is None else self._at

    async def start(self) -> None:
        self._nc = await connect_core(self.url, f"eventcollab-console:{self.subject}")
        await self._nc.subscribe(self.subject, cb=self._on_message)
        await self._nc.flush()  # subscribed at the server before the console says it is ready

    async def stop(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def _on_message(self, msg: Any) -> None:
        self.replay(msg.data)

    def replay(self, message: bytes) -> None:
        """Record each report of one message; one that cannot be read is counted and skipped."""
        try:
            items = unbatch(message)
        except Exception:
            self.refused += 1
            log.debug("flow feed: a message that is no batch of reports", exc_info=True)
            return
        for item in items:
            try:
                name, at, args = decode(item)
                if name not in _REPORTS:  # a newer sender's report this console does not know
                    raise ValueError(f"no report {name!r}")
                self._at = at
                getattr(self.recorder, name)(*args)
                self.replayed += 1
            except Exception:
                self.refused += 1
                log.debug("flow feed: report not replayed", exc_info=True)
            finally:
                self._at = None


def feed_for(
    settings: Settings, observers: Observers, recorder: FlowRecorder
) -> FlowFeed | FeedReplayer | None:
    """``FLOWS_FEED``: a process that consumes sends (its feed added to ``observers``), the console
    (``CONSUME=0``) replays into ``recorder``; None when off, or when the console records no flows."""
    if not settings.flows_feed:
        return None
    where = subject(settings.bus_namespace)
    if settings.consume:
        feed = FlowFeed(settings.bus_url, where)
        observers.add(feed)
        return feed
    return FeedReplayer(settings.bus_url, where, recorder) if recorder.max_flows > 0 else None
