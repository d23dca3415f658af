"""See the flow: an Observer that keeps recent flows (one per correlation id) and draws them.

Every hop (HTTP request and reply, publish, delivery, redelivery, ack, failure, dead letter) becomes a
:class:`Hop` in its flow. Callbacks only build a small record, append it and hand it to live
subscribers (O(1) each, no I/O); ordering and drawing happen when someone reads a flow. Retention is
bounded: ``flows_max`` flows (oldest evicted first), ``flows_max_hops`` hops per flow.

A flow belongs to a login: the first one its hops name (the token of an HTTP request, the login a login
request authenticated, or an event's subject). A reader may be limited to one login's flows; a flow
no login has named yet is only the operator's to see. The correlation id is the client's to choose, so
a hop naming another login than its flow's is that login's: it goes to a flow of its own under the
same id, never into the first login's.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any, NamedTuple

from app.bus import Envelope
from app.config import Settings
from app.observe.observers import HttpExchange

CLIENT, BROKER = "Client", "Brocker-service"
# the seed diagram's names and order, so a drawn flow can be laid next to it
SERVICES = {
    "person": "Person-service",
    "billing": "Billing-service",
    "orders": "Order-service",
    "notifications": "Notification-service",
}
PARTICIPANTS = (CLIENT, "Person-service", BROKER, *list(SERVICES.values())[1:])
HTTP_MODULES = {"/person": "person", "/account": "billing", "/order": "orders", "/notice": "notifications"}
# the route cannot tell a deposit from a withdrawal (the body is not observed): "operation" covers both
KINDS = {
    ("POST", "/person/register"): "register",
    ("POST", "/person/login"): "login",
    ("GET", "/person/persons/{login}"): "profile",
    ("PUT", "/account/operation"): "operation",
    ("GET", "/account/"): "balance",
    ("GET", "/account"): "balance",
    ("POST", "/order/createOrder"): "order",
    ("GET", "/order/orders/{order_id}"): "order-status",
    ("GET", "/order/orders"): "orders",
    ("GET", "/notice/notices/"): "notices",
    ("GET", "/notice/notices"): "notices",
}
# the viewer's own traffic and operations endpoints would drown the flows worth seeing
UNRECORDED = (
    "/flows",
    "/health",
    "/admin",
    "/metrics",
    "/asyncapi",
    "/web/",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/favicon",
)
SUBSCRIBER_QUEUE = 512


class Hop(NamedTuple):
    """One hop of a flow (a named tuple: one is made per hop on the hot path, 3x cheaper than a
    frozen dataclass)."""

    seq: int
    at: float  # time.time()
    # request | reply | published | delivered | redelivered | duplicate | acked | skipped | failed |
    # dead_lettered | note (a module's own change, in words: a self-arrow)
    kind: str
    correlation_id: str
    module: str  # the HTTP route's module, the event's source, or the consumer group
    label: str  # "POST /order/createOrder", the event type, or a note's text
    causation_id: str = ""
    event_id: str = ""
    subject: str = ""
    attempt: int = 0
    status: int = 0
    error: str = ""
    duration: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": _iso(self.at),
            "kind": self.kind,
            "correlationId": self.correlation_id,
            "causationId": self.causation_id,
            "module": self.module,
            "label": self.label,
            "eventId": self.event_id,
            "subject": self.subject,
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "duration": self.duration,
        }


@dataclass(slots=True)
class Flow:
    correlation_id: str
    hops: list[Hop] = field(default_factory=list)
    login: str = ""
    kind: str = ""
    kind_at: float = float("inf")  # start of the HTTP exchange the kind came from: the earliest wins
    dropped: int = 0
    # (event id, group, attempt) delivered so far: a second delivery of one is a duplicate
    deliveries: set[tuple[str, str, int]] = field(default_factory=set)

    def ordered(self) -> list[Hop]:
        # HTTP exchanges are reported when they end; their request hop is placed at its start time
        return sorted(self.hops, key=lambda h: (h.at, h.seq))

    def outcome(self) -> str:
        kinds = [h.kind for h in self.hops]
        statuses = [h.status for h in self.hops if h.kind == "reply"]
        open_deliveries = (
            kinds.count("delivered")
            + kinds.count("redelivered")
            + kinds.count("duplicate")
            - kinds.count("acked")
            - kinds.count("failed")
        )
        if "dead_lettered" in kinds:
            return "dead_lettered"
        if any(s >= 500 for s in statuses):
            return "error"
        if any(s >= 400 for s in statuses):
            return "rejected"
        if open_deliveries > 0:
            return "in_flight"
        if 202 in statuses:
            return "accepted"  # answered before it settled (ORDER_REPLY_TIMEOUT)
        return "retried" if "failed" in kinds else "ok"

    def summary(self) -> dict[str, Any]:
        start = min(h.at for h in self.hops)
        end = max(h.at for h in self.hops)
        return {
            "correlationId": self.correlation_id,
            "login": self.login or None,
            "kind": self.kind or "events",
            "start": _iso(start),
            "duration": round(end - start, 6),
            "outcome": self.outcome(),
            "hops": len(self.hops),
            "redeliveries": sum(1 for h in self.hops if h.kind == "redelivered"),
            "droppedHops": self.dropped,
        }


class Subscriber:
    """One live reader: a bounded queue. When it falls ``SUBSCRIBER_QUEUE`` hops behind it is dropped
    (its stream ends after what it holds), so a slow reader never blocks the bus or grows memory.
    ``login``: only hops of that login's flows (None: every flow's)."""

    def __init__(self, correlation_id: str | None, login: str | None = None) -> None:
        self.correlation_id = correlation_id
        self.login = login
        self.queue: asyncio.Queue[Hop] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.dropped = False

    async def next(self) -> Hop | None:
        if self.dropped and self.queue.empty():
            return None
        return await self.queue.get()


class FlowRecorder:
    """An Observer (app/observe/observers.py) that keeps the last ``max_flows`` flows in memory."""

    def __init__(self, max_flows: int = 1000, max_hops: int = 500) -> None:
        self.max_flows, self.max_hops = max_flows, max_hops
        self.flows: OrderedDict[str, Flow] = OrderedDict()
        self.subscribers: set[Subscriber] = set()
        self._seq = count(1)

    @classmethod
    def from_settings(cls, settings: Settings) -> FlowRecorder:
        return cls(settings.flows_max, settings.flows_max_hops)

    # -- Observer --------------------------------------------------------------------------------

    def on_http(self, exchange: HttpExchange) -> None:
        if exchange.path == "/" or exchange.path.startswith(UNRECORDED):
            return
        route = exchange.route or exchange.path
        module = next((m for p, m in HTTP_MODULES.items() if exchange.path.startswith(p)), "app")
        cid, label = exchange.correlation_id, f"{exchange.method} {exchange.path}"
        flow = self._flow(cid, exchange.login)
        if exchange.started < flow.kind_at:
            flow.kind_at = exchange.started
            flow.kind = KINDS.get((exchange.method, route), route)
        self._add(flow, Hop(next(self._seq), exchange.started, "request", cid, module, label))
        end = exchange.started + exchange.duration
        duration = round(exchange.duration, 6)
        self._add(
            flow,
            Hop(next(self._seq), end, "reply", cid, module, label, status=exchange.status, duration=duration),
        )

    def on_published(self, event: Envelope) -> None:
        self._event("published", event, event.source)

    def on_delivered(self, event: Envelope, group: str) -> None:
        self._event("redelivered" if event.attempt > 1 else "delivered", event, group)

    def on_skipped(self, event: Envelope, group: str) -> None:
        self._event("skipped", event, group)

    def on_note(self, module: str, correlation_id: str, login: str, text: str) -> None:
        flow = self._flow(correlation_id, login)
        self._add(
            flow, Hop(next(self._seq), time.time(), "note", correlation_id, module, text, subject=login)
        )

    def on_acked(self, event: Envelope, group: str, duration: float) -> None:
        self._event("acked", event, group, duration=duration)

    def on_failed(self, event: Envelope, group: str, error: str) -> None:
        self._event("failed", event, group, error=error)

    def on_dead_lettered(self, event: Envelope, group: str, error: str) -> None:
        self._event("dead_lettered", event, group, error=error)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, correlation_id: str, login: str | None = None) -> Flow | None:
        """The flow, if it is ``login``'s (None: whoever's it is, the first login's if several used
        the id)."""
        flow = self.flows.get(correlation_id)
        if flow is not None and login in (None, flow.login):
            return flow
        return self.flows.get(_own(correlation_id, login)) if login else None

    def recent(self, limit: int, login: str | None = None) -> list[Flow]:
        out: list[Flow] = []
        for flow in reversed(self.flows.values()):
            if login is None or flow.login == login:
                out.append(flow)
                if len(out) >= limit:
                    break
        return out

    def subscribe(self, correlation_id: str | None = None, login: str | None = None) -> Subscriber:
        sub = Subscriber(correlation_id, login)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    # -- inside ----------------------------------------------------------------------------------

    def _event(
        self, kind: str, event: Envelope, module: str, *, error: str = "", duration: float | None = None
    ) -> None:
        cid = event.correlationid or event.causationid or event.id
        # every event's subject is the login (README, the events table)
        flow = self._flow(cid, event.subject)
        if kind in ("delivered", "redelivered"):
            key = (event.id, module, event.attempt)
            if key in flow.deliveries:
                kind = "duplicate"  # the same delivery again: the bus (or chaos) duplicated it
            else:
                flow.deliveries.add(key)
        hop = Hop(
            next(self._seq),
            time.time(),
            kind,
            cid,
            module,
            event.type,
            causation_id=event.causationid,
            event_id=event.id,
            subject=event.subject,
            attempt=event.attempt,
            error=error[:300] if error else "",
            duration=None if duration is None else round(duration, 6),
        )
        self._add(flow, hop)

    def _flow(self, cid: str, login: str) -> Flow:
        key = cid
        flow = self.flows.get(key)
        if flow is not None and login and flow.login and flow.login != login:
            key = _own(cid, login)
            flow = self.flows.get(key)
        if flow is None:
            flow = self.flows[key] = Flow(cid)
            if len(self.flows) > self.max_flows:
                self.flows.popitem(last=False)
        if not flow.login and login:
            flow.login = login
        return flow

    def _add(self, flow: Flow, hop: Hop) -> None:
        if len(flow.hops) >= self.max_hops:
            flow.dropped += 1
            return
        flow.hops.append(hop)
        if not self.subscribers:
            return  # the usual case: nobody watching live, nothing more to do
        for sub in tuple(self.subscribers):
            if sub.correlation_id not in (None, hop.correlation_id) or sub.login not in (None, flow.login):
                continue
            try:
                sub.queue.put_nowait(hop)
            except asyncio.QueueFull:
                sub.dropped = True
                self.subscribers.discard(sub)


def _own(cid: str, login: str) -> str:
    # a key no client's correlation id can be: the edge takes only printable ASCII, no newline
    return f"{cid}\n{login}"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()
