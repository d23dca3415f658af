"""Structured logs: one JSON object a line (``LOG_FORMAT=console`` for humans; the default ``auto`` is
console on a terminal, JSON otherwise), the correlation id on every line emitted while a request or
an event delivery is being handled.

Everything goes through the stdlib ``logging`` root handler with structlog's ``ProcessorFormatter``,
so our ``logging.getLogger(__name__)`` calls, uvicorn's loggers and ``structlog.get_logger()`` all
come out the same way.

Where the correlation id comes from (``app.observe.context.correlation_id``, a ContextVar):

- HTTP: ``EdgeMiddleware`` sets it for the request (uvicorn's access line is written inside it too).
- Events: :class:`CorrelationObserver.on_delivered` sets it from the delivered envelope. The bus calls
  ``on_delivered`` in the task that then awaits the handler (``ObservedBus.subscribe``), so the value
  holds for that delivery: the handler, the bus's redelivery warning and dead-letter error. Each
  delivery overwrites it; the worker task's context is its own, so nothing leaks into other tasks.
- Units of work: the database writer runs a batch of units from different flows, and sets the id of
  each unit's own flow (its cause's, or the request's that submitted it) while that unit runs, so a
  line logged from a service or handler carries the right id too.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from app.bus import Envelope
from app.observe.context import correlation_id
from app.observe.observers import HttpExchange

FORMATS = ("auto", "json", "console")
# INFO lines libraries write on every start that tell an operator nothing (LOG_LEVEL=debug keeps them):
# alembic's plugin set-up and per-database context (its "Running upgrade" lines are kept: they say a
# schema changed), and uvicorn's start-up chatter, which the one "serving on" line replaces
UVICORN_START = (
    "Started server process",
    "Waiting for application startup",
    "Application startup complete",
    "Uvicorn running on",
)


class LibraryNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        if record.name.startswith("alembic."):
            return record.getMessage().startswith("Running ")
        if record.name == "uvicorn.error":
            return not record.getMessage().startswith(UVICORN_START)
        return True


# the flow viewer's operator address, /?operator=<token>: an access log line must not carry the token
_OPERATOR_TOKEN_IN_QUERY = re.compile(r"([?&]operator=)[^&\s]*")


class OperatorTokenHidden(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            record.args = tuple(
                _OPERATOR_TOKEN_IN_QUERY.sub(r"\1(hidden)", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def add_correlation_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    cid = correlation_id.get()
    if cid:
        event_dict.setdefault("correlation_id", cid)
    return event_dict


def configure(level: str = "info", fmt: str = "json", *, stream: TextIO | None = None) -> logging.Handler:
    """Route every log record (stdlib and structlog) to ``stream`` (stderr) as JSON lines or, with
    ``fmt="console"``, as coloured text; ``"auto"`` is console when ``stream`` is a terminal. Replaces
    the root logger's handlers; returns the new one."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "auto":
        fmt = "console" if (stream or sys.stderr).isatty() else "json"
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_correlation_id,
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(default=str)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(OperatorTokenHidden())
    if level.lower() != "debug":
        handler.addFilter(LibraryNoise())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own dictConfig (skipped with log_config=None) would give these handlers of their own
        uvicorn_log = logging.getLogger(name)
        uvicorn_log.handlers.clear()
        uvicorn_log.setLevel(logging.NOTSET)  # uvicorn.run(log_level=...) sets it again
        uvicorn_log.propagate = True
    return handler


class CorrelationObserver:
    """Sets the correlation id for the delivery being handled (see the module docstring)."""

    def on_delivered(self, event: Envelope, group: str) -> None:
        correlation_id.set(event.correlationid or event.id)

    def on_http(self, exchange: HttpExchange) -> None: ...

    def on_published(self, event: Envelope) -> None: ...

    def on_acked(self, event: Envelope, group: str, duration: float) -> None: ...

    def on_failed(self, event: Envelope, group: str, error: str) -> None: ...

    def on_dead_lettered(self, event: Envelope, group: str, error: str) -> None: ...

    def on_note(self, module: str, correlation_id: str, login: str, text: str) -> None: ...

    def on_skipped(self, event: Envelope, group: str) -> None: ...
