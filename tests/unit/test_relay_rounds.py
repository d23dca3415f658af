"""The relay's rounds: events published together share no subject and no flow, and every subject's
and every flow's events keep their commit order across rounds."""

from __future__ import annotations

import random

from app.bus import Envelope
from app.messaging.outbox import rounds


def event(subject: str, flow: str = "", n: int = 0) -> Envelope:
    return Envelope(type="t.happened.v1", source="test", data={"n": n}, subject=subject, correlationid=flow)


def test_unrelated_events_go_together_and_a_flows_next_event_waits_for_the_round_before() -> None:
    burst = [event(f"login{i}", f"order{i}") for i in range(3)]
    burst += [event(f"login{i}", f"order{i}", n=1) for i in range(3)]  # each flow's second event
    burst.append(event("login0", "order9"))  # another flow of login0
    got = [[(e.subject, e.data["n"]) for e in r] for r in rounds(burst)]
    assert got == [
        [("login0", 0), ("login1", 0), ("login2", 0)],
        [("login0", 1), ("login1", 1), ("login2", 1)],
        [("login0", 0)],
    ]


def test_every_subjects_and_every_flows_order_is_kept_in_any_burst() -> None:
    rng = random.Random(7)
    burst = [event(f"s{rng.randrange(5)}", f"f{rng.randrange(7)}", n=i) for i in range(200)]
    published = [e for r in rounds(burst) for e in r]
    assert sorted(e.data["n"] for e in published) == list(range(200))
    for key in ("subject", "correlationid"):
        for value in {getattr(e, key) for e in burst}:
            seq = [e.data["n"] for e in published if getattr(e, key) == value]
            assert seq == sorted(seq), (key, value)
    for r in rounds(burst):
        assert len({e.subject for e in r}) == len(r) == len({e.correlationid for e in r})
