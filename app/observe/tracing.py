"""OpenTelemetry traces, off unless ``OTEL_TRACES`` (or the standard ``OTEL_TRACES_EXPORTER``) is set: one
trace from an HTTP request through every event hop it causes. Each process traces under its own
``service.name`` (:func:`service_name`: ``OTEL_SERVICE_NAME``, else one named for its modules), each
replica with its own ``service.instance.id``.

- a SERVER span per HTTP request (:class:`TracingMiddleware`, outside the edge middleware so it covers
  it); a ``traceparent`` header from the client is continued;
- a CONSUMER span ``process <type>`` per delivery, child of the span whose ``traceparent`` the envelope
  carries (:class:`Tracing` is an Observer: ``on_delivered`` starts the span in the delivering task and
  ``on_acked``/``on_failed`` end it there, around the handler);
- while either span is open, ``app.observe.context.traceparent`` holds it, and ``UnitOfWork.emit``
  stamps it on every event emitted, so the next consumer's span is its child.

app/main.py imports this file only when tracing is on: off, no OpenTelemetry code is loaded or run.
"""

from __future__ import annotations

import importlib
import socket
import sys
from contextvars import ContextVar

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.bus import Envelope
from app.config import MODULES, Settings
from app.observe.context import traceparent
from app.observe.observers import HttpExchange, Observers

KINDS = ("console", "memory", "otlp")
_PROPAGATOR = TraceContextTextMapPropagator()
# the span of the delivery being handled in this task (set by on_delivered, ended by on_acked/on_failed)
_delivery: ContextVar[Span | None] = ContextVar("delivery_span", default=None)


def format_traceparent(span: Span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def parent_context(value: str) -> Context:
    """The context a span continues from a W3C ``traceparent``; "" or an invalid one starts a new trace."""
    return _PROPAGATOR.extract({"traceparent": value}) if value else Context()


def _processor(kind: str) -> tuple[SpanProcessor, InMemorySpanExporter | None]:
    exporter: SpanExporter
    if kind == "memory":
        memory = InMemorySpanExporter()
        return SimpleSpanProcessor(memory), memory  # synchronous: a test sees a span once it ended
    if kind == "console":
        # one JSON object per line on stderr (the SDK's default is indented, over many lines)
        exporter = ConsoleSpanExporter(out=sys.stderr, formatter=lambda s: s.to_json(indent=None) + "\n")
    elif kind == "otlp":
        try:
            otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        except ImportError as exc:
            raise ValueError("otlp traces need opentelemetry-exporter-otlp-proto-http") from exc
        exporter = otlp.OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_ENDPOINT and friends from the env
    else:
        raise ValueError(f"unknown OTEL_TRACES={kind!r}: use one of {', '.join(KINDS)}, or leave it empty")
    return BatchSpanProcessor(exporter), None  # exports off the event loop, in the SDK's thread


def service_name(settings: Settings) -> str:
    """``OTEL_SERVICE_NAME``; else ``eventcollab`` for the whole system in one process, and
    ``eventcollab-<module>`` (``-<module>+<module>``) for a process running fewer: the distributed
    topology's processes and the chart's pods trace as the services they are."""
    if settings.otel_service_name:
        return settings.otel_service_name
    if set(settings.modules) == set(MODULES):
        return "eventcollab"
    return "eventcollab-" + "+".join(settings.modules)


class Tracing:
    """The tracer, and the Observer that gives every delivery its span."""

    def __init__(self, settings: Settings) -> None:
        processor, self.memory = _processor(settings.traces_exporter)
        attributes = {
            "service.name": service_name(settings),
            # replicas of one module share the name; the instance tells them apart
            "service.instance.id": f"{socket.gethostname()}:{settings.port}",
        }
        # memory is for tests, which build many apps: no exit hook per provider
        self.provider = TracerProvider(
            resource=Resource.create(attributes), shutdown_on_exit=self.memory is None
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("eventcollab")
        scheme = settings.bus_url.split(":", 1)[0]
        self.system = {"amqp": "rabbitmq", "amqps": "rabbitmq", "tls": "nats"}.get(scheme, scheme)

    def flush(self) -> None:
        """Export the spans still waiting in the batch: at shutdown, or the last requests' are lost
        (the exit hook came too late for them: seen with the console exporter)."""
        self.provider.force_flush(timeout_millis=5000)

    def spans(self) -> tuple[ReadableSpan, ...]:
        """The spans ended so far (``OTEL_TRACES=memory`` only)."""
        return tuple(self.memory.get_finished_spans()) if self.memory is not None else ()

    def on_delivered(self, event: Envelope, group: str) -> None:
        # a cancelled delivery reports no end: close its span before this one replaces it
        self._end("delivery cancelled")
        span = self.tracer.start_span(
            f"process {event.type}",
            context=parent_context(event.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": self.system,
                "messaging.operation.type": "process",
                "messaging.destination.name": event.type,
                "messaging.consumer.group.name": group,
                "messaging.message.id": event.id,
                "messaging.message.conversation_id": event.correlationid,
                "eventcollab.source": event.source,
                "eventcollab.subject": event.subject,
                "eventcollab.attempt": event.attempt,
            },
        )
        _delivery.set(span)
        traceparent.set(format_traceparent(span))

    def on_acked(self, event: Envelope, group: str, duration: float) -> None:
        self._end()

    def on_failed(self, event: Envelope, group: str, error: str) -> None:
        self._end(error)

    def on_http(self, exchange: HttpExchange) -> None: ...

    def on_published(self, event: Envelope) -> None: ...

    def on_dead_lettered(self, event: Envelope, group: str, error: str) -> None: ...

    def on_note(self, module: str, correlation_id: str, login: str, text: str) -> None: ...

    def on_skipped(self, event: Envelope, group: str) -> None: ...

    def _end(self, error: str = "") -> None:
        span = _delivery.get()
        if span is None:
            return
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        _delivery.set(None)
        traceparent.set("")


class TracingMiddleware:
    """A SERVER span around each HTTP request, current while the request runs."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app, self.tracer = app, tracing.tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), "")
        span = self.tracer.start_span(
            method,
            context=parent_context(incoming),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        status = 500

        async def traced_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name == b"x-correlation-id":  # set by EdgeMiddleware, inside this one
                        span.set_attribute("eventcollab.correlation_id", value.decode())
            await send(message)

        token = traceparent.set(format_traceparent(span))
        attached = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, traced_send)
        except Exception as exc:
            span.record_exception(exc)
            raise
        finally:
            otel_context.detach(attached)
            traceparent.reset(token)
            route = getattr(scope.get("route"), "path", "")
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()


def install(app: FastAPI, settings: Settings, observers: Observers) -> Tracing:
    """Trace ``app``: call after every other middleware is added, so the server span is the outermost."""
    tracing = Tracing(settings)
    observers.add(tracing)
    app.add_middleware(TracingMiddleware, tracing=tracing)
    app.state.tracing = tracing
    return tracing
