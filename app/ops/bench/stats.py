"""What one phase of the run measured: latencies (HDR histogram), errors, outcomes, CPU."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3


@dataclass
class Stats:
    """Latencies (µs, HDR) of the requests that got their final answer, and what went wrong."""

    hist: Any = field(default_factory=lambda: HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS))
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    started: int = 0
    done: int = 0
    elapsed: float = 0.0
    cpu: dict[str, float | None] = field(default_factory=dict)
    per_second: list[int] = field(default_factory=list)  # answers in each whole second of the phase

    def record(self, started_ns: int) -> None:
        micros = (time.perf_counter_ns() - started_ns) // 1000
        self.hist.record_value(max(LOWEST_US, min(HIGHEST_US, micros)))
        self.done += 1

    def ms(self, percentile: float) -> float:
        return float(self.hist.get_value_at_percentile(percentile)) / 1000 if self.done else 0.0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0
