"""create_app: the one place that wires the modules, and the platform's routes, into FastAPI."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from functools import partial

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app import problems
from app.bus import Bus
from app.config import Settings
from app.edge import docs
from app.edge.asgi import Service
from app.edge.auth import Auth
from app.edge.deps import one_value_each
from app.edge.fastlane import FastLane, FastRoute
from app.edge.middleware import EdgeMiddleware
from app.observe import flows, viewer
from app.observe.flows.feed import feed_for
from app.observe.logs import CorrelationObserver
from app.observe.metrics import Metrics
from app.ops import admin, asyncapi, health, lab, lab_link
from app.system import MODULES, System


def fast_routes(settings: Settings) -> dict[tuple[str, str], tuple[FastRoute, BaseRoute]]:
    """Every running module's fast routes, each with the FastAPI route it stands in for."""
    out: dict[tuple[str, str], tuple[FastRoute, BaseRoute]] = {}
    for name in settings.modules:
        module = MODULES[name]
        for (method, path), fast in module.FAST.items():
            route = next(
                r
                for r in module.router.routes
                if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
            )
            out[(method, path)] = (fast, route)
    return out


def create_app(settings: Settings, *, bus: Bus | None = None) -> FastAPI:
    system = System(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await system.start(bus)
        if feed is not None:
            await feed.start()
        if lab_end is not None:
            await lab_end.start()
        app.state.dbs = system.dbs
        # what start-up made (~130,000 objects: the libraries, the app) lives as long as the process:
        # out of the collector's way, so a full collection under load walks only what requests make
        gc.freeze()
        try:
            yield
        finally:
            await system.stop()
            if feed is not None:
                await feed.stop()  # after the bus: what stopping reported goes too
            if lab_end is not None:
                await lab_end.stop()
            tracing = getattr(app.state, "tracing", None)
            if tracing is not None:
                tracing.flush()

    app = Service(
        title="eventcollab",
        version="0.1.0",
        summary="Event collaboration through a message broker: the seed scenario, durable.",
        lifespan=lifespan,
        docs_url=None,  # served by edge.docs: Swagger UI from vendored files, not a CDN
        redoc_url=None,  # FastAPI's ReDoc page loads its script from a CDN: blank offline
        dependencies=[Depends(one_value_each)],
    )
    app.state.settings = settings
    app.state.system = system
    app.state.replies = system.replies
    # a token is valid by its signature and expiry alone: no module reads another's database
    app.state.auth = Auth(settings)
    problems.install(app)
    for name in settings.modules:
        app.include_router(MODULES[name].router)
    app.include_router(health.router(system))
    app.include_router(admin.router(system))
    # FLOWS_FEED (the distributed topology): the console's lab acts on every module process
    lab_end: lab_link.LabAgent | lab_link.LabLink | None = None
    if settings.flows_feed:
        where = lab_link.subject(settings.bus_namespace)
        if settings.consume:
            lab_end = lab_link.LabAgent(settings.bus_url, where, partial(lab.apply_command, system))
        else:
            lab_end = lab_link.LabLink(settings.bus_url, where)
    app.include_router(lab.router(system, lab_end if isinstance(lab_end, lab_link.LabLink) else None))
    system.observers.add(CorrelationObserver())  # first: the others' log lines carry the id
    metrics = Metrics(system.relays)
    system.observers.add(metrics)
    app.include_router(metrics.router())
    app.include_router(asyncapi.router())
    app.include_router(docs.router(app.title))
    recorder = flows.FlowRecorder.from_settings(settings)
    if recorder.max_flows > 0:  # FLOWS_MAX=0 turns the recorder off
        system.observers.add(recorder)
    app.include_router(flows.router(recorder, system))
    # FLOWS_FEED: every consuming process sends its hops to the console, which records them all
    feed = feed_for(settings, system.observers, recorder)
    app.include_router(viewer.router)
    app.add_middleware(FastLane, routes=fast_routes(settings))
    app.add_middleware(EdgeMiddleware, max_body=settings.max_body_bytes, observers=system.observers)
    if settings.traces_exporter:  # off by default: then no OpenTelemetry code is imported or run
        from app.observe.tracing import install

        install(app, settings, system.observers)  # last: its server span is the outermost layer
    return app
