"""The lab across processes: in the distributed topology (``FLOWS_FEED=1``) the console's ``/admin/chaos``
and ``/admin/modules`` act on every module process, so the page at the front pauses billing, not the
console (which consumes nothing).

Core NATS request/reply on ``<BUS_NAMESPACE>.lab``, on the bus's server, beside the flow feed: the
console publishes a command with a reply inbox, every module process (a :class:`LabAgent`) applies it to
its own lab layer and answers with its state, and the console gathers the answers that come within
``WINDOW`` (how many processes there are, it does not know). A process that does not answer in time is
left out of that answer, not waited for. Each process keeps its own endpoints too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import orjson

from app.observe.flows.feed import connect_core

log = logging.getLogger(__name__)

# the console's wait for answers: a module process answers a command in ~1 ms here
WINDOW = 0.3


def subject(namespace: str) -> str:
    return f"{namespace}.lab"


class LabAgent:
    """In each module process: applies the console's lab commands here (``apply``: a command to this
    process's state, app/ops/lab.py) and answers with this process's state."""

    def __init__(self, url: str, subject: str, apply: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.url, self.subject, self.apply = url, subject, apply
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._nc: Any = None

    async def start(self) -> None:
        self._nc = await connect_core(self.url, f"eventcollab-lab:{self.subject}")
        await self._nc.subscribe(self.subject, cb=self._on_command)
        await self._nc.flush()

    async def stop(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def _on_command(self, msg: Any) -> None:
        try:
            answer = {"process": self.name, **self.apply(orjson.loads(msg.data))}
        except Exception as exc:  # a command this process cannot take: say so, never raise
            log.warning("lab command refused: %s", exc)
            answer = {"process": self.name, "error": str(exc)}
        if msg.reply:
            await self._nc.publish(msg.reply, orjson.dumps(answer))


class LabLink:
    """In the console: sends a command to every module process and gathers their answers."""

    def __init__(self, url: str, subject: str) -> None:
        self.url, self.subject = url, subject
        self._nc: Any = None

    async def start(self) -> None:
        self._nc = await connect_core(self.url, f"eventcollab-console-lab:{self.subject}")

    async def stop(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def ask(self, command: dict[str, Any], window: float = WINDOW) -> list[dict[str, Any]]:
        """Every answer that arrives within ``window`` seconds, errors left out (and logged)."""
        inbox = self._nc.new_inbox()
        answers: asyncio.Queue[bytes] = asyncio.Queue()

        async def collect(msg: Any) -> None:
            answers.put_nowait(msg.data)

        sub = await self._nc.subscribe(inbox, cb=collect)
        out: list[dict[str, Any]] = []
        try:
            await self._nc.publish(self.subject, orjson.dumps(command), reply=inbox)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(window):
                    while True:
                        out.append(orjson.loads(await answers.get()))
        finally:
            await sub.unsubscribe()
        for answer in out:
            if "error" in answer:
                log.warning("lab command %s refused by %s: %s", command, answer["process"], answer["error"])
        return [a for a in out if "error" not in a]


def merged_modules(answers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per module over its processes: paused when all are, ``partly paused`` when some are; the backlogs
    added up; how many processes run it."""
    out: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for name, state in answer["modules"].items():
            seen = out.setdefault(name, {"states": [], "backlog": 0, "consumes": state["consumes"]})
            seen["states"].append(state["state"])
            seen["backlog"] += state["backlog"]
    for seen in out.values():
        states = seen.pop("states")
        seen["processes"] = len(states)
        seen["state"] = states[0] if len(set(states)) == 1 else "partly paused"
    return dict(sorted(out.items()))


def merged_chaos(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The processes' chaos (the first one's setting: the console sets them all alike), faults added up."""
    if not answers:
        return {"enabled": False, "chaos": {}, "spec": "", "injected": {}, "processes": 0}
    first = answers[0]["chaos"]
    injected: dict[str, int] = {}
    for answer in answers:
        for fault, n in answer["chaos"]["injected"].items():
            injected[fault] = injected.get(fault, 0) + n
    alike = all(a["chaos"]["chaos"] == first["chaos"] for a in answers)
    return {**first, "injected": injected, "processes": len(answers), "alike": alike}
