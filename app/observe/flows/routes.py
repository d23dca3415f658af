"""The flows over HTTP: recent flows, one flow as JSON or drawn, a live stream of hops (SSE).

Each login sees its own flows (its token), the operator every flow (OPERATOR_TOKEN); no token is 401.
Another login's flow is not found, as another login's order is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import PlainTextResponse, Response

from app.edge.auth import Auth, FlowsOf, require_self
from app.edge.fields import LOGIN_PATTERN
from app.observe.flows.drawing import Arrow, Labels, mermaid_of, scenario_arrows, sequencediagram_of
from app.observe.flows.drawing import arrows as drawn
from app.observe.flows.recorder import FlowRecorder, Subscriber
from app.problems import NotFound, declared

if TYPE_CHECKING:
    from app.system import System

CORRELATION_ID = r"^[ -~]{1,64}$"  # what the edge takes as an X-Correlation-ID: printable ASCII
Format = Literal["json", "mermaid", "sequencediagram"]
SCENARIO_MAX = 50  # flows in one scenario: the page's steps are 8
# correlation ids, comma-separated (so an id with a comma in it cannot be asked for here)
ID = r"[ -+\--~]{1,64}"
SCENARIO_IDS = f"^{ID}(,{ID}){{0,{SCENARIO_MAX - 1}}}$"
# JSON, or the diagram's text
DRAWN: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "text/plain": {}}}}


def router(recorder: FlowRecorder, system: System) -> APIRouter:
    r = APIRouter(prefix="/flows", tags=["flows"])

    @r.get("", responses=declared(401, 403, s403="`login` names another login than the token's"))
    async def list_flows(
        mine: FlowsOf,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        login: Annotated[str | None, Query(pattern=LOGIN_PATTERN)] = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Recent flows (one per correlation id), newest first: your own, or with the operator's token
        everyone's (``login`` picks one)."""
        if mine is not None and login is not None:
            require_self(mine, login)
        return {"flows": [f.summary() for f in recorder.recent(limit, mine or login)]}

    @r.get("/chaos", responses=declared(401))
    async def chaos(_: FlowsOf) -> dict[str, Any]:
        """Whether chaos is on (BUS_CHAOS at start-up, or the operator's PUT /admin/chaos since), and
        the faults injected since it was set."""
        layer = system.chaos
        chaos = layer.chaos if layer is not None else None
        injected = layer.injected if layer is not None and chaos is not None else None
        return {"enabled": chaos is not None, "spec": chaos.spec() if chaos else "", "injected": injected}

    @r.get(
        "/stream",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}, **declared(401)},
    )
    async def stream(
        request: Request,
        mine: FlowsOf,
        correlation_id: Annotated[str | None, Query(alias="correlationId", pattern=CORRELATION_ID)] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> EventSourceResponse:
        """Server-Sent Events: each new hop of your flows (everyone's, with the operator's token) as it
        is recorded (``record`` events); ``limit`` ends the stream after that many. The stream ends
        after FLOWS_STREAM_SECONDS, and when a user's token expires: reconnect. A reader that falls far
        behind is cut off and should reconnect too."""
        auth: Auth = request.app.state.auth
        ends = time.time() + system.settings.flows_stream_seconds
        if mine is not None:
            expires = auth.expires(request.headers.get("authorization", ""))
            ends = min(ends, expires if expires is not None else ends)
        sub = recorder.subscribe(correlation_id, mine)
        return EventSourceResponse(_hops(recorder, sub, limit, ends), ping=15)

    @r.get("/scenario", responses={**DRAWN, **declared(401)})
    async def scenario(
        mine: FlowsOf,
        ids: Annotated[str, Query(pattern=SCENARIO_IDS, description="correlation ids, comma-separated")],
        fmt: Annotated[Format, Query(alias="format")] = "json",
        labels: Annotated[Labels, Query(description="seed: the seed diagram's words")] = "events",
    ) -> Response:
        """Several flows, in the order given, as one diagram under a divider per step: the page's steps
        make the seed scenario redrawn from real traffic. Flows not found (or not yours) are left out
        and listed as ``missing`` in the JSON."""
        found = {i: recorder.get(i, mine) for i in ids.split(",")}
        flows = [f for f in found.values() if f is not None]
        if fmt == "json":
            body = {
                "flows": [f.summary() for f in flows],
                "missing": [i for i, f in found.items() if f is None],
                "records": [h.as_json() for f in flows for h in f.ordered()],
            }
            return Response(orjson.dumps(body), media_type="application/json")
        return _drawn(scenario_arrows(flows, labels), fmt, labels)

    @r.get(
        "/{correlation_id}",
        responses={**DRAWN, **declared(401, 404, s404="no such flow of yours (or evicted)")},
    )
    async def get_flow(
        mine: FlowsOf,
        correlation_id: Annotated[str, Path(max_length=64)],
        fmt: Annotated[Format, Query(alias="format")] = "json",
        labels: Annotated[Labels, Query(description="seed: the seed diagram's words")] = "events",
    ) -> Response:
        """One flow: its hops as JSON, or drawn as Mermaid or sequencediagram.org text, worded with
        the events' names or (``labels=seed``) the seed diagram's words."""
        flow = recorder.get(correlation_id, mine)
        if flow is None:
            raise NotFound(f"no flow {correlation_id!r} (never seen, evicted, or not yours)")
        if fmt != "json":
            return _drawn(drawn(flow, labels), fmt, labels)
        body = {**flow.summary(), "records": [h.as_json() for h in flow.ordered()]}
        return Response(orjson.dumps(body), media_type="application/json")

    return r


def _drawn(lines: list[Arrow], fmt: Format, labels: Labels) -> Response:
    if fmt == "mermaid":
        return PlainTextResponse(mermaid_of(lines))
    return PlainTextResponse(sequencediagram_of(lines, seed_syntax=labels == "seed"))


async def _hops(
    recorder: FlowRecorder, sub: Subscriber, limit: int | None, ends: float
) -> AsyncIterator[ServerSentEvent]:
    sent = 0
    try:
        while limit is None or sent < limit:
            try:
                async with asyncio.timeout(ends - time.time()):
                    hop = await sub.next()
            except TimeoutError:
                return
            if hop is None:
                return
            yield ServerSentEvent(orjson.dumps(hop.as_json()).decode(), event="record", id=str(hop.seq))
            sent += 1
    finally:
        recorder.unsubscribe(sub)
