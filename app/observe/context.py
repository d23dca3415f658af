"""The ids of the flow being served, as ContextVars: set by the edge and the bus, read by storage
(events emitted carry them), logs and tracing. A leaf: it imports nothing of the app."""

from __future__ import annotations

from contextvars import ContextVar

# the correlation id of the HTTP request being served; events emitted without a cause carry it
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="")
# the W3C traceparent of the span being served (app/tracing.py sets it; "" when tracing is off):
# events emitted carry it, so their consumers' spans continue the trace
traceparent: ContextVar[str] = ContextVar("traceparent", default="")
# the login an HTTP request is for: its token's, or the one a login request authenticated ("" for
# none). Set by app/edge/auth.py, reported with the exchange: flows are each login's own
request_login: ContextVar[str] = ContextVar("request_login", default="")
