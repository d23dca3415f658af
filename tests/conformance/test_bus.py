"""What every bus adapter guarantees (app/bus.py::Bus), and what the memory bus adds for the relay."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from app.bus import Bus, Envelope, MemoryBus
from app.messaging.chaos import Chaos, ChaosBus
from tests.conformance.conftest import (
    BACKOFF,
    CHAOS,
    DUPLICATING,
    MAX_ATTEMPTS,
    Recorder,
    envelope,
    open_test_bus,
)
from tests.support.poll import until

# asyncio may fire a timer up to one clock tick early; a lower bound must allow for exactly that
TICK = time.get_clock_info("monotonic").resolution
# on each test that counts every delivery as exactly one: skipped on the duplicating chaos bus only
exactly_once = pytest.mark.exactly_once


def happened(namespace: str) -> str:
    return f"{namespace}.happened.v1"


@exactly_once
async def test_each_group_gets_every_event(bus: Bus, namespace: str) -> None:
    a, b = Recorder(), Recorder()
    await bus.subscribe(happened(namespace), "a", a)
    await bus.subscribe(happened(namespace), "b", b)
    sent = [envelope(happened(namespace), subject=f"s{i}", n=i) for i in range(5)]
    for event in sent:
        await bus.publish(event)
    await until(lambda: len(a) >= 5 and len(b) >= 5)
    assert sorted(a.ids) == sorted(b.ids) == sorted(e.id for e in sent)
    assert {e.data["n"] for e in a.handled} == set(range(5))


@exactly_once
async def test_members_of_one_group_compete_for_events(bus: Bus, namespace: str) -> None:
    first, second = Recorder(), Recorder()
    await bus.subscribe(happened(namespace), "g", first)
    await bus.subscribe(happened(namespace), "g", second)
    sent = [envelope(happened(namespace), subject=f"s{i}") for i in range(40)]
    for event in sent:
        await bus.publish(event)
    await until(lambda: len(first) + len(second) >= len(sent))
    assert len(first) + len(second) == len(sent)
    assert set(first.ids).isdisjoint(second.ids)
    assert set(first.ids) | set(second.ids) == {e.id for e in sent}
    assert first.handled and second.handled


@exactly_once
async def test_raising_handler_gets_the_event_again_with_a_higher_attempt_after_the_backoff(
    bus: Bus, namespace: str
) -> None:
    flaky = Recorder(fail_first=2)
    await bus.subscribe(happened(namespace), "g", flaky)
    event = envelope(happened(namespace), subject="s")
    await bus.publish(event)
    await until(lambda: len(flaky) == 1)
    assert flaky.attempts_of(event) == [1, 2, 3]
    assert flaky.handled == [event]
    first, second, third = (d.at for d in flaky.deliveries)
    assert second - first >= BACKOFF.delay(1) - TICK
    assert third - second >= BACKOFF.delay(2) - TICK


@exactly_once
async def test_event_failing_every_attempt_is_dead_lettered_and_later_events_still_flow(
    bus_kind: str, namespace: str
) -> None:
    letters: list[tuple[Envelope, str, str]] = []

    async def sink(event: Envelope, group: str, error: str) -> None:
        letters.append((event, group, error))

    handler = Recorder(fail_if=lambda e: bool(e.data.get("poison")))
    async with open_test_bus(bus_kind, namespace=namespace, dead_letters=sink) as bus:
        await bus.subscribe(happened(namespace), "g", handler)
        poison = envelope(happened(namespace), subject="s", poison=True)
        same_subject = envelope(happened(namespace), subject="s")
        other_subject = envelope(happened(namespace), subject="t")
        for event in (poison, same_subject, other_subject):
            await bus.publish(event)
        await until(lambda: len(letters) == 1 and len(handler) == 2)
    assert handler.attempts_of(poison) == list(range(1, MAX_ATTEMPTS + 1))
    assert sorted(handler.ids) == sorted([same_subject.id, other_subject.id])
    dead, group, error = letters[0]
    assert (dead.id, dead.attempt, group) == (poison.id, MAX_ATTEMPTS, "g")
    assert f"refused {poison.id} on attempt {MAX_ATTEMPTS}" in error


@exactly_once
async def test_order_per_subject_holds_within_a_group_even_through_redeliveries(
    bus: Bus, namespace: str
) -> None:
    # the first delivery fails, so event 0 is redelivered while events 1..9 wait behind it
    handler = Recorder(fail_first=1)
    await bus.subscribe(happened(namespace), "g", handler)
    sent = [envelope(happened(namespace), subject="s", n=i) for i in range(10)]
    for event in sent:
        await bus.publish(event)
    await until(lambda: len(handler) == len(sent))
    assert handler.ids == [e.id for e in sent]
    assert handler.attempts_of(sent[0]) == [1, 2]


@exactly_once
async def test_a_subject_blocked_in_a_slow_handler_does_not_stop_other_subjects(
    bus: Bus, namespace: str
) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def handler(event: Envelope) -> None:
        if event.subject == "slow":
            entered.set()
            await gate.wait()
        done.append(event.subject)

    await bus.subscribe(happened(namespace), "g", handler)
    await bus.publish(envelope(happened(namespace), subject="slow"))
    await until(entered.is_set)
    others = [f"fast{i}" for i in range(16)]
    for subject in others:
        await bus.publish(envelope(happened(namespace), subject=subject))
    # at least one, not all: an adapter may spread subjects over a fixed set of partitions (the memory
    # bus has 64), and a subject sharing the slow one's partition waits behind it, as in Kafka
    await until(lambda: len(done) >= 1)
    assert "slow" not in done
    gate.set()
    await until(lambda: len(done) == 1 + len(others))
    assert sorted(done) == sorted(["slow", *others])


async def test_publish_with_no_subscribers_is_accepted(bus: Bus, namespace: str) -> None:
    await bus.publish(envelope(happened(namespace), subject="s"))
    late = Recorder()
    await bus.subscribe(happened(namespace), "g", late)
    event = envelope(happened(namespace), subject="s")
    await bus.publish(event)
    await until(lambda: event.id in late.ids)


async def test_close_stops_delivery_and_abandons_the_handler_in_flight(bus: Bus, namespace: str) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    finished: list[str] = []
    abandoned: list[str] = []

    async def handler(event: Envelope) -> None:
        if event.data.get("hold"):
            entered.set()
            try:
                await gate.wait()
            except asyncio.CancelledError:
                abandoned.append(event.id)
                raise
        finished.append(event.id)

    await bus.subscribe(happened(namespace), "g", handler)
    held = envelope(happened(namespace), subject="s", hold=True)
    await bus.publish(held)
    await bus.publish(envelope(happened(namespace), subject="s"))
    await until(entered.is_set)
    # close must not wait for a handler that never returns; the unacked event is the broker's to redeliver
    await asyncio.wait_for(bus.close(), timeout=5)
    assert abandoned == [held.id]
    assert finished == []
    with pytest.raises(RuntimeError):
        await bus.publish(envelope(happened(namespace), subject="s"))


# -- the in-process buses only (memory, and chaos over it): settlement is how the relay knows an event
# needs no republishing


@exactly_once
async def test_settled_fires_once_after_every_group_acked_and_not_before(
    in_process_bus: Bus, namespace: str
) -> None:
    settled: list[Envelope] = []
    in_process_bus.on_settled("test", settled.append)
    gate, entered = asyncio.Event(), asyncio.Event()

    async def slow(event: Envelope) -> None:
        entered.set()
        await gate.wait()

    quick = Recorder()
    await in_process_bus.subscribe(happened(namespace), "slow", slow)
    await in_process_bus.subscribe(happened(namespace), "quick", quick)
    event = envelope(happened(namespace), subject="s")
    await in_process_bus.publish(event)
    await until(lambda: entered.is_set() and len(quick) == 1)
    assert settled == []
    gate.set()
    await until(lambda: len(settled) == 1)
    # a later event on the same subject settles only after the first: by then a repeat would show
    marker = envelope(happened(namespace), subject="s")
    await in_process_bus.publish(marker)
    await until(lambda: len(settled) == 2)
    assert [e.id for e in settled] == [event.id, marker.id]


async def test_settled_fires_for_a_dead_lettered_event_after_its_letter_is_kept(
    in_process_kind: str, namespace: str
) -> None:
    letters: list[str] = []

    async def sink(event: Envelope, group: str, error: str) -> None:
        letters.append(event.id)

    async with open_test_bus(in_process_kind, namespace=namespace, dead_letters=sink) as bus:
        letters_when_settled: list[int] = []
        bus.on_settled("test", lambda e: letters_when_settled.append(len(letters)))
        await bus.subscribe(happened(namespace), "g", Recorder(fail_if=lambda e: True))
        await bus.publish(envelope(happened(namespace), subject="s"))
        await until(lambda: letters_when_settled)
    assert letters_when_settled == [1]


async def test_settled_fires_at_once_for_an_event_nobody_subscribes_to_and_only_for_its_source(
    in_process_bus: Bus, namespace: str
) -> None:
    settled: list[Envelope] = []
    in_process_bus.on_settled("test", settled.append)
    ours = envelope(happened(namespace), source="test")
    await in_process_bus.publish(envelope(happened(namespace), source="elsewhere"))
    await in_process_bus.publish(ours)
    assert settled == [ours]


# -- the chaos buses' own faults: seeded, so these event ids always meet the same schedule


def fixed(namespace: str, count: int = 30) -> list[Envelope]:
    """Events with fixed ids over three subjects: the seed decides per (id, group, attempt)."""
    return [
        Envelope(type=happened(namespace), source="test", subject=f"s{i % 3}", data={"n": i}, id=f"e{i:02d}")
        for i in range(count)
    ]


@pytest.mark.parametrize("kind", sorted(CHAOS))
async def test_each_chaos_adapter_injects_the_faults_it_is_configured_with(kind: str, namespace: str) -> None:
    async with open_test_bus(kind, namespace=namespace) as bus:
        assert isinstance(bus, ChaosBus)
        handler = Recorder()
        await bus.subscribe(happened(namespace), "g", handler)
        sent = fixed(namespace)
        for event in sent:
            await bus.publish(event)
        await until(lambda: len(handler) == len(sent) + bus.injected["duplicate"])
    assert bus.injected["delay"] > 0 and bus.injected["reorder"] > 0, bus.injected
    assert (bus.injected["duplicate"] > 0) is (kind in DUPLICATING), bus.injected


async def test_a_duplicating_bus_hands_each_group_every_event_once_or_twice_in_subject_order(
    namespace: str,
) -> None:
    async with open_test_bus("chaos-duplicates", namespace=namespace) as bus:
        assert isinstance(bus, ChaosBus)
        a, b = Recorder(), Recorder()
        await bus.subscribe(happened(namespace), "a", a)
        await bus.subscribe(happened(namespace), "b", b)
        sent = fixed(namespace)
        for event in sent:
            await bus.publish(event)
        # a duplicate is counted just before it is handled, in the same step: equal means all arrived
        await until(lambda: len(a) + len(b) == 2 * len(sent) + bus.injected["duplicate"])
    assert bus.injected["duplicate"] > 0
    for recorder in (a, b):
        counts = Counter(recorder.ids)
        assert set(counts) == {e.id for e in sent} and set(counts.values()) <= {1, 2}
        for subject in ("s0", "s1", "s2"):
            seen = [e.id for e in recorder.handled if e.subject == subject]
            once = [i for k, i in enumerate(seen) if k == 0 or seen[k - 1] != i]  # a duplicate is adjacent
            assert once == [e.id for e in sent if e.subject == subject]


async def test_a_chaos_bus_with_no_faults_delivers_exactly_as_the_bus_it_wraps(namespace: str) -> None:
    bus = ChaosBus(MemoryBus(), Chaos(seed=7))
    try:
        handler = Recorder()
        await bus.subscribe(happened(namespace), "g", handler)
        sent = [envelope(happened(namespace), subject="s") for _ in range(5)]
        for event in sent:
            await bus.publish(event)
        await until(lambda: len(handler) == len(sent))
        assert handler.ids == [e.id for e in sent]
        assert bus.injected == {"duplicate": 0, "delay": 0, "reorder": 0, "fail": 0}
    finally:
        await bus.close()
