"""One place where the flow is observed: a bus that wraps a bus and reports every hop to observers.

Observers (the flow recorder, metrics) implement :class:`Observer`; each callback must be cheap and
must not raise (it runs on the hot path, so record and return: heavy work belongs in a task of its
own). The HTTP side reports through :func:`http_observed` from the edge middleware.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from app.bus import Bus, BusWrapper, DeadLetterSink, Envelope, Handler

log = logging.getLogger(__name__)


class HttpExchange(NamedTuple):
    """One HTTP request and its answer, reported by the edge when the answer is sent."""

    method: str
    path: str
    status: int
    correlation_id: str
    started: float  # time.time()
    duration: float  # seconds
    route: str = ""  # the route template, e.g. /order/orders/{order_id}; "" when no route matched
    login: str = ""  # the login the request was for (app/observe/context.py: request_login); "" for none


class Observer(Protocol):
    def on_http(self, exchange: HttpExchange) -> None: ...

    def on_published(self, event: Envelope) -> None: ...

    def on_delivered(self, event: Envelope, group: str) -> None:
        """A delivery to a group's handler starts; ``event.attempt`` > 1 is a redelivery."""

    def on_acked(self, event: Envelope, group: str, duration: float) -> None: ...

    def on_failed(self, event: Envelope, group: str, error: str) -> None:
        """The handler raised: the bus will redeliver, or dead-letter after its last attempt."""

    def on_dead_lettered(self, event: Envelope, group: str, error: str) -> None: ...

    def on_note(self, module: str, correlation_id: str, login: str, text: str) -> None:
        """A module changed its own state and said what (a committed unit of work): a self-arrow."""

    def on_skipped(self, event: Envelope, group: str) -> None:
        """The group's inbox had the event already: acked with no effect (a duplicate delivery)."""


_REPORTS = (
    "on_http",
    "on_published",
    "on_delivered",
    "on_acked",
    "on_failed",
    "on_dead_lettered",
    "on_note",
    "on_skipped",
)


class Observers:
    """Fans each report out to every observer; an observer that raises is logged, never propagated.
    Each report walks a list of bound methods made when an observer is added: no lookup, and nothing
    allocated when no observer listens."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self.observers: list[Observer] = []
        self._calls: dict[str, list[Callable[..., None]]] = {name: [] for name in _REPORTS}
        for observer in observers:
            self.add(observer)

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)
        for name, calls in self._calls.items():
            calls.append(getattr(observer, name))

    def _each(self, name: str, *args: object) -> None:
        for call in self._calls[name]:
            try:
                call(*args)
            except Exception:
                log.exception("observer %s failed in %s", type(call.__self__).__name__, name)  # type: ignore[attr-defined]

    def on_http(self, exchange: HttpExchange) -> None:
        self._each("on_http", exchange)

    def on_published(self, event: Envelope) -> None:
        self._each("on_published", event)

    def on_delivered(self, event: Envelope, group: str) -> None:
        self._each("on_delivered", event, group)

    def on_acked(self, event: Envelope, group: str, duration: float) -> None:
        self._each("on_acked", event, group, duration)

    def on_failed(self, event: Envelope, group: str, error: str) -> None:
        self._each("on_failed", event, group, error)

    def on_dead_lettered(self, event: Envelope, group: str, error: str) -> None:
        self._each("on_dead_lettered", event, group, error)

    def on_note(self, module: str, correlation_id: str, login: str, text: str) -> None:
        self._each("on_note", module, correlation_id, login, text)

    def on_skipped(self, event: Envelope, group: str) -> None:
        self._each("on_skipped", event, group)

    def dead_letter_sink(self, inner: DeadLetterSink) -> DeadLetterSink:
        """Wrap the bus's dead-letter sink so dead letters are reported too."""

        async def sink(event: Envelope, group: str, error: str) -> None:
            self.on_dead_lettered(event, group, error)
            await inner(event, group, error)

        return sink


class ObservedBus(BusWrapper):
    """Wraps any Bus (above the lab's layer, so what is observed is what reaches a consumer's code)."""

    def __init__(self, inner: Bus, observers: Observers) -> None:
        super().__init__(inner)
        self.observers = observers

    async def publish(self, event: Envelope) -> None:
        await self.inner.publish(event)
        self.observers.on_published(event)

    async def subscribe(self, event_type: str, group: str, handler: Handler) -> None:
        observers = self.observers

        async def observed(event: Envelope) -> bool | None:
            observers.on_delivered(event, group)
            started = time.perf_counter()
            try:
                result = await handler(event)
            except Exception as exc:
                observers.on_failed(event, group, f"{type(exc).__name__}: {exc}")
                raise
            observers.on_acked(event, group, time.perf_counter() - started)
            if result is False:
                observers.on_skipped(event, group)
            return result

        await self.inner.subscribe(event_type, group, observed)
