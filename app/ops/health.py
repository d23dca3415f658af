"""Health: ``/health/live`` (the process answers) and ``/health/ready`` (every database and the bus)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from app import problems

if TYPE_CHECKING:
    from app.system import System


def router(system: System) -> APIRouter:
    r = APIRouter()

    @r.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @r.get(
        "/health/ready", tags=["health"], responses={503: {"description": "a database or the bus is down"}}
    )
    async def ready() -> Response:
        """Ready when every database and the bus are up."""
        checks = await system.ready()
        if all(checks.values()):
            return Response(
                orjson.dumps({"status": "ready", "checks": checks}), media_type="application/json"
            )
        down = ", ".join(k for k, ok in checks.items() if not ok)
        return problems.problem_response(
            503, "not-ready", "Not ready", f"down: {down}", extra={"checks": checks}
        )

    return r
