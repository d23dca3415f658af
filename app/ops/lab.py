"""The lab's operator endpoints: chaos while the system runs, and modules paused and resumed.

``PUT /admin/chaos`` replaces the seeded faults of every delivery from then on (``{}``: none);
``POST /admin/modules/{name}/pause`` holds the module's deliveries (its HTTP routes stay up, its events
wait in the bus and the producers' outboxes) until ``…/resume``. Each needs the operator's token. In the
distributed mode every process has them for the modules it runs (docs/lab.md).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app import problems
from app.edge.auth import Operator
from app.messaging.chaos import DELAY, Chaos, parse_delay
from app.ops.lab_link import LabLink, merged_chaos, merged_modules
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

    @field_validator("delay", mode="before")
    @classmethod
    def _readable_delay(cls, raw: object) -> object:
        # said in words before the pattern is checked: the pattern itself is no message for a person
        if isinstance(raw, str) and not re.fullmatch(DELAY, raw.strip()):
            raise ValueError("delay must be a duration such as 0-50ms, 20ms or 0.1-0.5s")
        return raw

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


def module_state(system: System, name: str) -> dict[str, Any]:
    layer = system.chaos
    paused = layer is not None and layer.paused(name)
    return {
        "state": "paused" if paused else "running",
        "backlog": layer.waiting(name) if layer is not None else 0,
        "consumes": sorted(MODULES[name].SUBSCRIPTIONS),
    }


def apply_command(system: System, command: dict[str, Any]) -> dict[str, Any]:
    """A lab command from the console (app/ops/lab_link.py) applied here; this process's state after it."""
    layer = system.chaos
    assert layer is not None
    op, module = command.get("op"), command.get("module")
    if op == "chaos":
        layer.set(ChaosBody.model_validate(command.get("chaos", {})).chaos())
    elif op in ("pause", "resume") and module in system.dbs:
        (layer.pause if op == "pause" else layer.resume)(str(module))
    elif op not in ("state", "pause", "resume"):
        raise ValueError(f"no lab command {op!r}")
    return {"modules": {n: module_state(system, n) for n in system.dbs}, "chaos": chaos_state(system)}


def router(system: System, link: LabLink | None = None) -> APIRouter:
    """The lab's endpoints; with ``link`` (the console in the distributed topology) each acts on every
    module process instead of this one, and answers for all of them."""
    r = APIRouter(tags=["admin"], dependencies=[Operator], responses=problems.declared(401, 403))

    async def everywhere(command: dict[str, Any]) -> list[dict[str, Any]]:
        assert link is not None
        return await link.ask(command)

    def running(name: str) -> str:
        if name not in system.dbs:
            raise problems.NotFound(f"module {name!r} does not run in this process")
        return name

    @r.get("/admin/chaos")
    async def get_chaos() -> dict[str, Any]:
        """The faults every delivery gets now, and how many of each were injected since they were set
        (at the distributed topology's console: every module process's, added up)."""
        if link is not None:
            return merged_chaos(await everywhere({"op": "state"}))
        return chaos_state(system)

    @r.put("/admin/chaos")
    async def put_chaos(body: ChaosBody) -> dict[str, Any]:
        """Set the faults from the next delivery on (``{}``: none); the counts start again."""
        if link is not None:
            return merged_chaos(
                await everywhere({"op": "chaos", "chaos": body.model_dump(exclude_unset=True)})
            )
        assert system.chaos is not None
        system.chaos.set(body.chaos())
        return chaos_state(system)

    @r.get("/admin/modules")
    async def modules() -> dict[str, Any]:
        """Each module running here: whether its consumers take deliveries, and how many wait for it (at
        the distributed topology's console: over its processes, ``partly paused`` when some are)."""
        if link is not None:
            answers = await everywhere({"op": "state"})
            return {"modules": merged_modules(answers), "consuming": True, "processes": len(answers)}
        states = {name: module_state(system, name) for name in system.dbs}
        return {"modules": states, "consuming": system.settings.consume}

    async def switch(op: str, name: str) -> dict[str, Any]:
        if link is not None:
            merged = merged_modules(await everywhere({"op": op, "module": name}))
            if name not in merged:
                raise problems.NotFound(f"no process of module {name!r} answered")
            return {"name": name, **merged[name]}
        state = apply_command(system, {"op": op, "module": running(name)})
        return {"name": name, **state["modules"][name]}

    @r.post("/admin/modules/{name}/pause", responses=problems.declared(404))
    async def pause(name: Annotated[str, Path(max_length=32)]) -> dict[str, Any]:
        """Hold the module's deliveries; its HTTP routes stay up. Pausing a paused module changes nothing."""
        return await switch("pause", name)

    @r.post("/admin/modules/{name}/resume", responses=problems.declared(404))
    async def resume(name: Annotated[str, Path(max_length=32)]) -> dict[str, Any]:
        """Let the module's consumers take deliveries again: what waited is delivered, in order."""
        return await switch("resume", name)

    return r
