"""Seeded faults: a bus that wraps a bus, and a crash point between commit and publish.

``BUS_CHAOS="seed=42,duplicate=0.1,delay=0-50ms,reorder=0.05,fail=0.05"`` makes every delivery a
seeded coin toss: delivered twice, delayed, held back behind later events, or failed (before the
handler runs: a lost delivery; or after it committed: a lost ack). Each decision is a pure function
of (seed, event id, group, attempt, fault), so the same seed and the same events give the same
fault schedule whatever the timing. ``CRASH_AT="after_commit:0.01"`` hard-exits the process (no
cleanup, like kill -9) right after a commit and before its events reach the relay, with that
probability per committed batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from app.bus import Bus, Envelope, Handler

log = logging.getLogger(__name__)


class ChaosFault(Exception):
    """A delivery failed on purpose."""


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
                m = re.fullmatch(r"(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?(ms|s)?", raw.strip())
                if not m:
                    raise ValueError(f"BUS_CHAOS delay must look like 0-50ms, not {raw!r}")
                scale = 1.0 if m.group(3) == "s" else 0.001
                low = float(m.group(1)) * scale
                delay = (low, float(m.group(2)) * scale if m.group(2) else low)
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

    def draw(self, *key: object) -> float:
        """A uniform number in [0, 1) that depends only on the seed and ``key``."""
        digest = hashlib.blake2b(repr((self.seed, *key)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


class ChaosBus:
    """Wraps any Bus with seeded faults on the delivery side; publishing is untouched, so the outbox
    and the broker keep their guarantees and the consumers must absorb the mess."""

    def __init__(self, inner: Bus, chaos: Chaos) -> None:
        self.inner, self.chaos = inner, chaos
        self.injected: dict[str, int] = {"duplicate": 0, "delay": 0, "reorder": 0, "fail": 0}

    @property
    def durable(self) -> bool:
        return self.inner.durable

    @property
    def ready(self) -> bool:
        return self.inner.ready

    async def connect(self) -> None:
        await self.inner.connect()

    def expect_groups(self, expected: Mapping[str, Iterable[str]]) -> None:
        self.inner.expect_groups(expected)

    def on_settled(self, source: str, listener: Callable[[Envelope], None]) -> None:
        self.inner.on_settled(source, listener)

    async def publish(self, event: Envelope) -> None:
        await self.inner.publish(event)

    async def subscribe(self, event_type: str, group: str, handler: Handler) -> None:
        await self.inner.subscribe(event_type, group, self._wrap(group, handler))

    async def close(self) -> None:
        await self.inner.close()

    def _wrap(self, group: str, handler: Handler) -> Handler:
        c = self.chaos

        async def chaotic(event: Envelope) -> None:
            key = (event.id, group, event.attempt)
            if c.reorder and c.draw(*key, "reorder") < c.reorder:
                # held back well past the normal delay, so later events of other subjects overtake it
                self.injected["reorder"] += 1
                await asyncio.sleep(c.delay_max * 4 + 0.02)
            elif c.delay_max:
                self.injected["delay"] += 1
                await asyncio.sleep(c.delay_min + (c.delay_max - c.delay_min) * c.draw(*key, "delay"))
            failing = c.fail and c.draw(*key, "fail") < c.fail
            if failing and c.draw(*key, "when") < 0.5:
                self.injected["fail"] += 1
                raise ChaosFault(f"delivery of {event.id} to {group} dropped (attempt {event.attempt})")
            await handler(event)
            if c.duplicate and c.draw(*key, "duplicate") < c.duplicate:
                self.injected["duplicate"] += 1
                await handler(event)
            if failing:
                self.injected["fail"] += 1
                raise ChaosFault(f"ack of {event.id} from {group} lost (attempt {event.attempt})")

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
