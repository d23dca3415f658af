"""Prometheus metrics: an Observer of the flow, and the ``/metrics`` route that exposes them.

Each app gets its own ``CollectorRegistry`` (tests run many apps in one process). Labelled children
are looked up once and cached, so a report costs a dict lookup and an increment, nothing more.
Outbox lag is read from the database when scraped, never on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as render
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.process_collector import ProcessCollector
from starlette.responses import Response

from app.bus import Envelope
from app.edge.auth import Operator
from app.observe.observers import HttpExchange
from app.problems import declared

# createOrder waits up to ORDER_REPLY_TIMEOUT (5 s) for billing: the top buckets must reach past it
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HANDLER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# a client may send any token as a method: keep the label set bounded
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CREATE_ORDER = ("POST", "/order/createOrder")
# the orders group acking these is the moment an order is settled
SETTLED = {"billing.payment_succeeded.v1": "paid", "billing.payment_failed.v1": "rejected"}


class Lagging(Protocol):
    async def pending(self) -> tuple[int, float | None]: ...


M = TypeVar("M", bound=MetricWrapperBase)


class _Children(Generic[M]):
    """A metric's labelled children, created on first use and kept: ``labels()`` takes a lock and
    builds a tuple on every call, a dict hit does not."""

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self.cache: dict[tuple[str, ...], M] = {}

    def get(self, *labels: str) -> M:
        child = self.cache.get(labels)
        if child is None:
            child = self.cache[labels] = self.metric.labels(*labels)
        return child


class Metrics:
    """The flow's counters and histograms. ``relays`` is read on each scrape (``System.relays``: it
    fills in at start-up, so pass the dict itself)."""

    def __init__(self, relays: Mapping[str, Lagging], registry: CollectorRegistry | None = None) -> None:
        self.relays = relays
        self.registry = r = registry or CollectorRegistry()
        ProcessCollector(registry=r)
        self.http = _Children(
            Histogram(
                "http_request_duration_seconds",
                "HTTP requests by route template ('unmatched' when no route matched), method and status.",
                ["route", "method", "status"],
                buckets=HTTP_BUCKETS,
                registry=r,
            )
        )
        # keyed by the exchange's own fields: a hit needs no str(status), no label normalising
        self._http: dict[tuple[str, str, int], Histogram] = {}
        labels = ["type", "group"]
        self.published = _Children(
            Counter(
                "events_published",
                "Events the bus accepted, by type and source module.",
                ["type", "source"],
                registry=r,
            )
        )
        self.acked = _Children(
            Counter("events_consumed", "Deliveries a group's handler acked.", labels, registry=r)
        )
        self.redelivered = _Children(
            Counter(
                "events_redelivered", "Deliveries with attempt > 1 (after a failure).", labels, registry=r
            )
        )
        self.failed = _Children(
            Counter(
                "events_failed",
                "Deliveries whose handler raised (redelivered or dead-lettered).",
                labels,
                registry=r,
            )
        )
        self.dead = _Children(
            Counter(
                "events_dead_lettered",
                "Events a group gave up on after its last attempt.",
                labels,
                registry=r,
            )
        )
        self.skipped = _Children(
            Counter(
                "events_skipped",
                "Deliveries acked with no effect: the group's inbox had the event (a duplicate).",
                labels,
                registry=r,
            )
        )
        self.handling = _Children(
            Histogram(
                "event_handler_duration_seconds",
                "Time from delivery to ack, per type and group.",
                labels,
                buckets=HANDLER_BUCKETS,
                registry=r,
            )
        )
        outcomes = Counter(
            "orders_create_outcomes",
            "createOrder outcomes: paid/rejected when the orders module settles an order (acked billing "
            "event), pending when the reply was 202. An order answered 202 that settles later counts twice.",
            ["outcome"],
            registry=r,
        )
        self.paid, self.rejected, self.pending = (outcomes.labels(o) for o in ("paid", "rejected", "pending"))
        self.outcome = {"paid": self.paid, "rejected": self.rejected}
        self.reply_timeouts = Counter(
            "orders_reply_timeouts",
            "createOrder replies that gave up waiting for billing (answered 202 with a Location).",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "outbox_pending", "Outbox rows not yet handed to every consumer.", ["module"], registry=r
        )
        self.outbox_age = Gauge(
            "outbox_oldest_age_seconds",
            "Age of the oldest pending outbox row (0 when none).",
            ["module"],
            registry=r,
        )

    # -- Observer --------------------------------------------------------------------------------

    def on_http(self, exchange: HttpExchange) -> None:
        key = (exchange.route, exchange.method, exchange.status)
        child = self._http.get(key)
        if child is None:
            method = exchange.method if exchange.method in METHODS else "OTHER"
            child = self.http.get(exchange.route or "unmatched", method, str(exchange.status))
            if method != "OTHER":  # an odd method must not grow this dict either
                self._http[key] = child
        child.observe(exchange.duration)
        if exchange.status == 202 and (exchange.method, exchange.route) == CREATE_ORDER:
            self.pending.inc()
            self.reply_timeouts.inc()

    def on_published(self, event: Envelope) -> None:
        self.published.get(event.type, event.source).inc()

    def on_delivered(self, event: Envelope, group: str) -> None:
        if event.attempt > 1:
            self.redelivered.get(event.type, group).inc()

    def on_acked(self, event: Envelope, group: str, duration: float) -> None:
        self.acked.get(event.type, group).inc()
        self.handling.get(event.type, group).observe(duration)
        if group == "orders" and event.type in SETTLED:
            # an ack of a redelivery the inbox skipped counts again: exact only without duplicates
            self.outcome[SETTLED[event.type]].inc()

    def on_failed(self, event: Envelope, group: str, error: str) -> None:
        self.failed.get(event.type, group).inc()

    def on_dead_lettered(self, event: Envelope, group: str, error: str) -> None:
        self.dead.get(event.type, group).inc()

    def on_note(self, module: str, correlation_id: str, login: str, text: str) -> None: ...

    def on_skipped(self, event: Envelope, group: str) -> None:
        self.skipped.get(event.type, group).inc()

    # -- scrape ----------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read each module's outbox lag (one small query per module)."""
        for name, relay in list(self.relays.items()):
            count, oldest = await relay.pending()
            self.outbox_pending.labels(name).set(count)
            self.outbox_age.labels(name).set(oldest or 0.0)

    async def exposition(self) -> bytes:
        await self.refresh()
        return render(self.registry)

    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get(
            "/metrics",
            tags=["health"],
            response_class=Response,
            dependencies=[Operator],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **declared(401, 403)},
        )
        async def metrics() -> Response:
            """Prometheus metrics (text exposition format); the operator's token (a scrape config's
            ``authorization``)."""
            return Response(await self.exposition(), media_type=CONTENT_TYPE_LATEST)

        return r
