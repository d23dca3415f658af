"""OpenTelemetry traces over the whole system (ASGI): one trace from the HTTP request through every hop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from app.bus import Envelope
from app.config import Settings
from app.main import create_app
from app.observe.observers import HttpExchange
from app.observe.tracing import Tracing, format_traceparent, service_name
from tests.support.asgi import running
from tests.support.poll import until
from tests.support.seed import walk_seed_scenario
from tests.support.server import Server

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Published:
    """Records every envelope the relays hand to the bus."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    def on_published(self, event: Envelope) -> None:
        self.events.append(event)

    def on_http(self, exchange: HttpExchange) -> None: ...

    def on_delivered(self, event: Envelope, group: str) -> None: ...

    def on_acked(self, event: Envelope, group: str, duration: float) -> None: ...

    def on_failed(self, event: Envelope, group: str, error: str) -> None: ...

    def on_dead_lettered(self, event: Envelope, group: str, error: str) -> None: ...

    def on_note(self, module: str, correlation_id: str, login: str, text: str) -> None: ...

    def on_skipped(self, event: Envelope, group: str) -> None: ...


async def serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, Published]]:
    app = create_app(settings)
    published = Published()
    app.state.system.observers.add(published)
    async with running(app) as client:
        yield client, app, published


@pytest.fixture
async def traced(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, Published]]:
    async for served in serve(settings.with_(otel_traces="memory")):
        yield served


@pytest.fixture
async def untraced(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, Published]]:
    async for served in serve(settings):
        yield served


def tracing_of(app: FastAPI) -> Tracing:
    tracing: Tracing = app.state.tracing
    return tracing


def consumer(spans: Sequence[ReadableSpan], event_type: str, group: str) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == f"process {event_type}"
        and s.attributes is not None
        and s.attributes["messaging.consumer.group.name"] == group
    ]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_an_order_is_one_trace_from_the_request_through_every_hop(
    traced: tuple[httpx.AsyncClient, FastAPI, Published],
) -> None:
    client, app, published = traced
    tracing = tracing_of(app)
    await walk_seed_scenario(client)
    orders = sorted(
        (s for s in tracing.spans() if s.name == "POST /order/createOrder"), key=lambda s: s.start_time or 0
    )
    assert len(orders) == 2
    server = orders[0]  # the affordable one; the second is rejected
    assert server.kind is SpanKind.SERVER and server.parent is None
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    assert server.context is not None
    trace_id = server.context.trace_id

    def in_trace() -> list[ReadableSpan]:
        return [s for s in tracing.spans() if s.context is not None and s.context.trace_id == trace_id]

    await until(lambda: len(in_trace()) == 4)  # a consumer's span ends just after its commit is visible
    spans = in_trace()
    billing = consumer(spans, "orders.payment_requested.v1", "billing")
    paid = consumer(spans, "billing.payment_succeeded.v1", "orders")
    notified = consumer(spans, "billing.notification_requested.v1", "notifications")
    assert {s.kind for s in (billing, paid, notified)} == {SpanKind.CONSUMER}
    assert server.context is not None and billing.context is not None
    assert parent_of(billing) == server.context.span_id
    assert parent_of(paid) == billing.context.span_id
    assert parent_of(notified) == billing.context.span_id
    # the envelopes carried the emitting span's traceparent
    requested = next(e for e in published.events if e.type == "orders.payment_requested.v1")
    ctx = server.context
    assert requested.traceparent == f"00-{trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    # every other request began a trace of its own
    others = [s for s in tracing.spans() if s.kind is SpanKind.SERVER and s is not server]
    assert others and all(s.context is not None and s.context.trace_id != trace_id for s in others)


async def test_a_client_traceparent_is_continued(
    traced: tuple[httpx.AsyncClient, FastAPI, Published],
) -> None:
    client, app, _ = traced
    await client.get("/health/live", headers={"traceparent": TRACEPARENT})
    server = next(s for s in tracing_of(app).spans() if s.kind is SpanKind.SERVER)
    assert server.context is not None and server.parent is not None
    assert f"{server.context.trace_id:032x}" == TRACEPARENT.split("-")[1]
    assert f"{server.parent.span_id:016x}" == TRACEPARENT.split("-")[2]


async def test_without_tracing_envelopes_carry_no_traceparent_and_nothing_is_traced(
    untraced: tuple[httpx.AsyncClient, FastAPI, Published],
) -> None:
    client, app, published = untraced
    await walk_seed_scenario(client)
    assert published.events
    assert {e.traceparent for e in published.events} == {""}
    assert getattr(app.state, "tracing", None) is None
    assert not any(isinstance(o, Tracing) for o in app.state.system.observers.observers)


def test_an_unknown_setting_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES"):
        create_app(settings.with_(otel_traces="jaeger"))


def test_format_traceparent_is_w3c() -> None:
    context = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1))
    span = NonRecordingSpan(context)
    assert format_traceparent(span) == TRACEPARENT


def _load(**environ: str) -> Settings:
    return Settings.load(environ=environ, env_file=None, secrets_dir=None)


def test_the_standard_otel_traces_exporter_turns_tracing_on() -> None:
    assert _load().traces_exporter == ""
    assert _load(OTEL_TRACES_EXPORTER="none").traces_exporter == ""
    assert _load(OTEL_TRACES_EXPORTER="console").traces_exporter == "console"
    assert _load(OTEL_TRACES_EXPORTER="otlp").traces_exporter == "otlp"
    # the project's own OTEL_TRACES wins over the standard's
    assert _load(OTEL_TRACES="memory", OTEL_TRACES_EXPORTER="otlp").traces_exporter == "memory"
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        _load(OTEL_TRACES_EXPORTER="jaeger")


def test_each_process_traces_under_its_own_service_name(settings: Settings) -> None:
    assert service_name(settings) == "eventcollab"
    assert service_name(settings.with_(modules=("orders",))) == "eventcollab-orders"
    assert service_name(settings.with_(modules=("billing", "orders"))) == "eventcollab-billing+orders"
    assert service_name(settings.with_(modules=("orders",), otel_service_name="shop")) == "shop"
    app = create_app(settings.with_(otel_traces="memory", modules=("billing",), port=8112))
    attributes = tracing_of(app).provider.resource.attributes
    assert attributes["service.name"] == "eventcollab-billing"
    assert str(attributes["service.instance.id"]).endswith(":8112")


@pytest.mark.slow
def test_a_module_process_honours_the_standard_variables(tmp_path: Path) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "LOG_LEVEL": "warning"}
    with Server(tmp_path / "orders", env=env, args=("--modules", "orders")) as server:
        r = httpx.get(server.base_url + "/order/orders", params={"login": "nobody"}, timeout=5)
        assert r.status_code == 401
    # the console exporter writes one JSON object a line; the batch is flushed at shutdown
    spans = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    served = [s for s in spans if s["name"] == "GET /order/orders"]
    assert served, server.log()
    assert served[0]["resource"]["attributes"]["service.name"] == "eventcollab-orders"
    with Server(tmp_path / "named", env={**env, "OTEL_SERVICE_NAME": "shop-orders"}) as named:
        httpx.get(named.base_url + "/health/live", timeout=5)
    spans = [json.loads(line) for line in named.log().splitlines() if line.startswith("{")]
    assert spans and {s["resource"]["attributes"]["service.name"] for s in spans} == {"shop-orders"}
