"""Redelivery backoff: exponential, capped, with full jitter, so replicas that failed together do not
retry together."""

from __future__ import annotations

import random
import statistics

import pytest

from app.bus import Backoff


def test_the_window_doubles_with_each_attempt_up_to_the_cap() -> None:
    backoff = Backoff(0.05, 2.0)
    assert [backoff.ceiling(a) for a in range(1, 8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


@pytest.mark.parametrize("attempt", [1, 3, 6, 20])
def test_each_wait_is_a_uniform_draw_below_the_window(attempt: int) -> None:
    backoff = Backoff(0.05, 2.0, random=random.Random(attempt).random)
    ceiling = backoff.ceiling(attempt)
    waits = [backoff.delay(attempt) for _ in range(2000)]
    assert all(0 <= w < ceiling for w in waits)
    # the whole window is used, evenly: not a fixed wait with a little noise on it
    assert min(waits) < 0.05 * ceiling and max(waits) > 0.95 * ceiling
    assert statistics.fmean(waits) == pytest.approx(ceiling / 2, rel=0.05)


def test_replicas_that_failed_together_do_not_retry_in_lockstep() -> None:
    # two processes, each with its own generator (the default: the random module's, seeded per process)
    replicas = [Backoff(0.05, 2.0, random=random.Random(seed).random) for seed in (1, 2)]
    first, second = ([r.delay(attempt) for attempt in range(1, 6)] for r in replicas)
    assert all(abs(a - b) > 1e-6 for a, b in zip(first, second, strict=True))
    default = Backoff()
    assert len({default.delay(3) for _ in range(10)}) == 10
