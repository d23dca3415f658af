"""The lab's operator endpoints: chaos while the system runs, and modules paused and resumed.

``PUT /admin/chaos`` replaces the seeded faults of every delivery from then on (``{}``: none);
``POST /admin/modules/{name}/pause`` holds the module's deliveries (its HTTP routes stay up, its events
wait in the bus and the producers' outboxes) until ``…/resume``. Each needs the operator's token. In the
distributed mode every process has them for the modules it runs (docs/lab.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from app import problems
from app.edge.auth import Operator
from app.messaging.chaos import DELAY, Chaos, parse_delay
from app.system import MODULES

if TYPE_CHECKING:
    from app.system import System

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ChaosBody(BaseModel):
    """The ``BUS_CHAOS`` fields as JSON: any subset; ``{}`` turns chaos off."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seed": 7, "duplicate": 0.5}]})

    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    duplicate: Probability = 0.0
    delay: Annotated[str, Field(pattern=f"^{DELAY}$", max_length=32, examples=["0-50ms"])] | None = None
    reorder: Probability = 0.0
    fail: Probability = 0.0

    def chaos(self) -> Chaos | None:
        if not self.model_fields_set:
            return None
        low, high = parse_delay(self.delay) if self.delay else (0.0, 0.0)
        return Chaos(self.seed, self.duplicate, low, high, self.reorder, self.fail)


def chaos_state(system: System) -> dict[str, Any]:
    layer = system.chaos
    chaos = layer.chaos if layer is not None else None
    return {
        "enabled": chaos is not None,
        "chaos": chaos.as_json() if chaos is not None else {},
        "spec": chaos.spec() if chaos is not None else "",
        "injected": dict(layer.injected) if layer is not None else {},
    }


def router(system: System) -> APIRouter:
    r = APIRouter(tags=["admin"], dependencies=[Operator], responses=problems.declared(401, 403))

    def module_state(name: str) -> dict[str, Any]:
        layer = system.chaos
        paused = layer is not None and layer.paused(name)
        return {
            "state": "paused" if paused else "running",
            "backlog": layer.waiting(name) if layer is not None else 0,
            "consumes": sorted(MODULES[name].SUBSCRIPTIONS),
        }

    def running(name: str) -> str:
        if name not in system.dbs:
            raise problems.NotFound(f"module {name!r} does not run in this process")
        return name

    @r.get("/admin/chaos")
    async def get_chaos() -> dict[str, Any]:
        """The faults every delivery gets now, and how many of each were injected since they were set."""
        return chaos_state(system)

    @r.put("/admin/chaos")
    async def put_chaos(body: ChaosBody) -> dict[str, Any]:
        """Set the faults from the next delivery on (``{}``: none); the counts start again."""
        assert system.chaos is not None
        system.chaos.set(body.chaos())
        return chaos_state(system)

    @r.get("/admin/modules")
    async def modules() -> dict[str, Any]:
        """Each module running here: whether its consumers take deliveries, and how many wait for it."""
        states = {name: module_state(name) for name in system.dbs}
        return {"modules": states, "consuming": system.settings.consume}

    @r.post("/admin/modules/{name}/pause", responses=problems.declared(404))
    async def pause(name: Annotated[str, Path(max_length=32)]) -> dict[str, Any]:
        """Hold the module's deliveries; its HTTP routes stay up. Pausing a paused module changes nothing."""
        assert system.chaos is not None
        system.chaos.pause(running(name))
        return {"name": name, **module_state(name)}

    @r.post("/admin/modules/{name}/resume", responses=problems.declared(404))
    async def resume(name: Annotated[str, Path(max_length=32)]) -> dict[str, Any]:
        """Let the module's consumers take deliveries again: what waited is delivered, in order."""
        assert system.chaos is not None
        system.chaos.resume(running(name))
        return {"name": name, **module_state(name)}

    return r
