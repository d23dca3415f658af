"""Seeded faults: a bus that wraps a bus, and a crash point between commit and publish.

``BUS_CHAOS="seed=42,duplicate=0.1,delay=0-50ms,reorder=0.05,fail=0.05"`` makes every delivery a
seeded coin toss: delivered twice, delayed, held back behind later events, or failed (before the
handler runs: a lost delivery; or after it committed: a lost ack). Each decision is a pure function
of (seed, event id, group, attempt, fault), so the same seed and the same events give the same
fault schedule whatever the timing. ``PUT /admin/chaos`` changes them while the system runs, and
``POST /admin/modules/{name}/pause`` holds a module's deliveries (the lab: docs/lab.md).

``CRASH_AT="after_commit:0.01"`` hard-exits the process (no cleanup, like kill -9) right after a
commit and before its events reach the relay, with that probability per committed batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
from dataclasses import dataclass
from typing import Any

from app.bus import Bus, BusWrapper, Envelope, Handler
from app.observe.observers import Observer

log = logging.getLogger(__name__)


FAULTS = ("duplicate", "delay", "reorder", "fail")


class ChaosFault(Exception):
    """A delivery failed on purpose."""


DELAY = r"(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?(ms|s)?"


def parse_delay(raw: str) -> tuple[float, float]:
    """``0-50ms``, ``20ms``, ``0.1-0.5s`` (milliseconds without a unit) as (low, high) seconds."""
    m = re.fullmatch(DELAY, raw.strip())
    if not m:
        raise ValueError(f"delay must look like 0-50ms, not {raw!r}")
    scale = 1.0 if m.group(3) == "s" else 0.001
    low = float(m.group(1)) * scale
    high = float(m.group(2)) * scale if m.group(2) else low
    return min(low, high), max(low, high)  # a range given backwards is still that range


@dataclass(frozen=True, slots=True)
class Chaos:
    seed: int = 0
    duplicate: float = 0.0
    delay_min: float = 0.0
    delay_max: float = 0.0
    reorder: float = 0.0
    fail: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Chaos:
        """``seed=42,duplicate=0.1,delay=0-50ms,reorder=0.05,fail=0.05`` (any subset)."""
        values: dict[str, float] = {}
        delay = (0.0, 0.0)
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, raw = part.partition("=")
            key = key.strip()
            if key == "delay":
                try:
                    delay = parse_delay(raw)
                except ValueError as exc:
                    raise ValueError(f"BUS_CHAOS {exc}") from None
            elif key in ("seed", "duplicate", "reorder", "fail"):
                values[key] = float(raw)
            else:
                raise ValueError(f"unknown BUS_CHAOS fault {key!r}")
        for key in ("duplicate", "reorder", "fail"):
            if not 0.0 <= values.get(key, 0.0) <= 1.0:
                raise ValueError(f"BUS_CHAOS {key} must be a probability in [0, 1]")
        return cls(
            seed=int(values.get("seed", 0)),
            duplicate=values.get("duplicate", 0.0),
            delay_min=delay[0],
            delay_max=delay[1],
            reorder=values.get("reorder", 0.0),
            fail=values.get("fail", 0.0),
        )

    def delay_text(self) -> str:
        low, high = (round(x * 1000, 3) for x in (self.delay_min, self.delay_max))
        return f"{low:g}ms" if low == high else f"{low:g}-{high:g}ms"

    def as_json(self) -> dict[str, Any]:
        """The fields as ``PUT /admin/chaos`` takes them (the ones not set left out)."""
        out: dict[str, Any] = {"seed": self.seed}
        out.update({k: v for k, v in (("duplicate", self.duplicate), ("reorder", self.reorder)) if v})
        if self.delay_max:
            out["delay"] = self.delay_text()
        if self.fail:
            out["fail"] = self.fail
        return out

    def spec(self) -> str:
        """The ``BUS_CHAOS`` text of this setting."""
        return ",".join(f"{k}={v}" for k, v in self.as_json().items())

    def draw(self, *key: object) -> float:
        """A uniform number in [0, 1) that depends only on the seed and ``key``."""
        digest = hashlib.blake2b(repr((self.seed, *key)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


class ChaosBus(BusWrapper):
    """Wraps any Bus with the lab's controls on the delivery side: seeded faults (``chaos``, None for
    none, replaceable while running) and paused groups. Publishing is untouched, so the outbox and the
    broker keep their guarantees and the consumers must absorb the mess.

    It sits below the observers (``ObservedBus`` wraps it): they see what reaches a consumer's code, so a
    duplicate is drawn as a second delivery its inbox skipped, and a paused group's events as delivered
    when it resumes. The failures it injects it reports itself (``observers``): a lost delivery as a
    delivery and its nack, a lost ack as a nack after the ack; then the redelivery."""

    def __init__(self, inner: Bus, chaos: Chaos | None = None, *, observers: Observer | None = None) -> None:
        super().__init__(inner)
        self.chaos = chaos
        # told of the faults no consumer code sees: a delivery lost on the way, an ack lost after it
        self.observers = observers
        self.injected: dict[str, int] = dict.fromkeys(FAULTS, 0)
        # a paused group's deliveries wait on its gate, in order (each partition's next one at the
        # gate, the rest behind it in the bus); an open gate costs one dict lookup per delivery
        self._gates: dict[str, asyncio.Event] = {}
        self._held: dict[str, int] = {}

    def set(self, chaos: Chaos | None) -> None:
        """Replace the faults for every delivery from now on; the counts start again."""
        self.chaos = chaos
        self.injected = dict.fromkeys(FAULTS, 0)

    def pause(self, group: str) -> None:
        gate = self._gates.setdefault(group, asyncio.Event())
        gate.clear()

    def resume(self, group: str) -> None:
        gate = self._gates.pop(group, None)
        if gate is not None:
            gate.set()

    def paused(self, group: str) -> bool:
        return group in self._gates

    def waiting(self, group: str) -> int:
        """The inner bus's count, and the deliveries held at the group's gate."""
        return self.inner.waiting(group) + self._held.get(group, 0)

    async def subscribe(self, event_type: str, group: str, handler: Handler) -> None:
        await self.inner.subscribe(event_type, group, self._wrap(group, handler))

    async def close(self) -> None:
        for group in list(self._gates):
            self.resume(group)
        await self.inner.close()

    async def _hold(self, group: str, gate: asyncio.Event) -> None:
        self._held[group] = self._held.get(group, 0) + 1
        try:
            await gate.wait()
        finally:
            self._held[group] -= 1

    def _wrap(self, group: str, handler: Handler) -> Handler:
        async def chaotic(event: Envelope) -> bool | None:
            gate = self._gates.get(group)
            while gate is not None:  # paused, maybe again right after a resume
                await self._hold(group, gate)
                gate = self._gates.get(group)
            c = self.chaos
            if c is None:
                return await handler(event)
            injected = self.injected
            key = (event.id, group, event.attempt)
            if c.reorder and c.draw(*key, "reorder") < c.reorder:
                # held back well past the normal delay, so later events of other subjects overtake it
                injected["reorder"] += 1
                await asyncio.sleep(c.delay_max * 4 + 0.02)
            elif c.delay_max:
                injected["delay"] += 1
                await asyncio.sleep(c.delay_min + (c.delay_max - c.delay_min) * c.draw(*key, "delay"))
            failing = c.fail and c.draw(*key, "fail") < c.fail
            if failing and c.draw(*key, "when") < 0.5:
                injected["fail"] += 1
                fault = ChaosFault(f"delivery of {event.id} to {group} dropped (attempt {event.attempt})")
                if self.observers is not None:
                    self.observers.on_delivered(event, group)
                    self.observers.on_failed(event, group, f"ChaosFault: {fault}")
                raise fault
            result = await handler(event)
            if c.duplicate and c.draw(*key, "duplicate") < c.duplicate:
                injected["duplicate"] += 1
                result = await handler(event)
            if failing:
                injected["fail"] += 1
                fault = ChaosFault(f"ack of {event.id} from {group} lost (attempt {event.attempt})")
                if self.observers is not None:
                    self.observers.on_failed(event, group, f"ChaosFault: {fault}")
                raise fault
            return result

        return chaotic


class CrashPoint:
    """``after_commit:P``: with probability P per committed batch, exit at once, as kill -9 would."""

    POINTS = ("after_commit",)

    def __init__(self, spec: str, seed: int | None = None) -> None:
        point, _, p = spec.partition(":")
        if point not in self.POINTS:
            raise ValueError(f"CRASH_AT point must be one of {', '.join(self.POINTS)}, not {point!r}")
        self.point, self.probability = point, float(p or "0")
        self._rng = random.Random(seed)

    def maybe(self, point: str) -> None:
        if point == self.point and self._rng.random() < self.probability:
            log.critical("CRASH_AT %s: exiting now", point)
            os._exit(137)
