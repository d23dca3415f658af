"""The flows over HTTP: recent flows, one flow as JSON or drawn, a live stream of hops (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import PlainTextResponse, Response

from app.observe.flows.drawing import mermaid, sequencediagram
from app.observe.flows.recorder import FlowRecorder, Subscriber
from app.problems import NotFound

if TYPE_CHECKING:
    from app.system import System


def router(recorder: FlowRecorder, system: System) -> APIRouter:
    r = APIRouter(prefix="/flows", tags=["flows"])

    @r.get("")
    async def list_flows(
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        login: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Recent flows (one per correlation id), newest first."""
        return {"flows": [f.summary() for f in recorder.recent(limit, login)]}

    @r.get("/chaos")
    async def chaos() -> dict[str, Any]:
        """Whether BUS_CHAOS is on (read-only: set it at start-up) and the faults injected so far."""
        spec = system.settings.bus_chaos
        injected = system.chaos.injected if system.chaos is not None else None
        return {"enabled": bool(spec), "spec": spec, "injected": injected}

    @r.get("/stream", response_class=EventSourceResponse)
    async def stream(
        correlation_id: Annotated[str | None, Query(alias="correlationId", max_length=64)] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> EventSourceResponse:
        """Server-Sent Events: each new hop as it is recorded (``record`` events); ``limit`` ends the
        stream after that many. A reader that falls far behind is cut off and should reconnect."""
        sub = recorder.subscribe(correlation_id)
        return EventSourceResponse(_hops(recorder, sub, limit), ping=15)

    @r.get("/{correlation_id}", responses={404: {"description": "no such flow (or evicted)"}})
    async def get_flow(
        correlation_id: str,
        fmt: Annotated[Literal["json", "mermaid", "sequencediagram"], Query(alias="format")] = "json",
    ) -> Response:
        """One flow: its hops as JSON, or drawn as Mermaid or sequencediagram.org text."""
        flow = recorder.get(correlation_id)
        if flow is None:
            raise NotFound(f"no flow {correlation_id!r} (never seen, or evicted)")
        if fmt == "mermaid":
            return PlainTextResponse(mermaid(flow))
        if fmt == "sequencediagram":
            return PlainTextResponse(sequencediagram(flow))
        body = {**flow.summary(), "records": [h.as_json() for h in flow.ordered()]}
        return Response(orjson.dumps(body), media_type="application/json")

    return r


async def _hops(recorder: FlowRecorder, sub: Subscriber, limit: int | None) -> AsyncIterator[ServerSentEvent]:
    sent = 0
    try:
        while limit is None or sent < limit:
            hop = await sub.next()
            if hop is None:
                return
            yield ServerSentEvent(orjson.dumps(hop.as_json()).decode(), event="record", id=str(hop.seq))
            sent += 1
    finally:
        recorder.unsubscribe(sub)
