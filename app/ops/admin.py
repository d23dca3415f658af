"""Operator endpoints: outbox lag, dead letters and their redrive, the invariant report. Each needs the
operator's token (app/edge/auth.py: 401 without it, 403 for a user's token)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from app import problems
from app.edge.auth import Operator
from app.ops.invariants import check

if TYPE_CHECKING:
    from app.system import System


def router(system: System) -> APIRouter:
    r = APIRouter(tags=["admin"], dependencies=[Operator], responses=problems.declared(401, 403))

    @r.get("/admin/outbox", tags=["admin"])
    async def outbox() -> dict[str, Any]:
        """Per module: outbox rows not yet handed to every consumer, and the age of the oldest."""
        out = {}
        for name, relay in system.relays.items():
            pending, oldest = await relay.pending()
            out[name] = {"pending": pending, "oldestAgeSeconds": oldest}
        return {"modules": out}

    @r.get("/admin/deadletters", tags=["admin"])
    async def deadletters() -> dict[str, Any]:
        """Events a consumer group gave up on after BUS_MAX_ATTEMPTS deliveries."""
        assert system.dead_letters is not None
        return {"deadLetters": await system.dead_letters.list()}

    @r.post("/admin/deadletters/{letter_id}/redrive", tags=["admin"], responses=problems.declared(404))
    async def redrive(letter_id: str) -> dict[str, Any]:
        """Deliver a dead letter again. Every group gets it; the ones that had it already skip it
        (their inbox knows the event id), the one that gave up tries again."""
        assert system.dead_letters is not None and system.bus is not None
        taken = await system.dead_letters.take(letter_id)
        if taken is None:
            raise problems.NotFound(f"no dead letter {letter_id!r} waiting for a redrive")
        group, event = taken
        await system.bus.publish(event)
        return {"id": letter_id, "group": group, "eventId": event.id, "type": event.type, "redriven": True}

    @r.get("/admin/invariants", tags=["admin"])
    async def invariants() -> dict[str, Any]:
        """The invariant checker's report over this process's databases."""
        report = await check(system.dbs, pending_grace=timedelta(seconds=system.settings.order_reply_timeout))
        return report.as_dict()

    return r
