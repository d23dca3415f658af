"""Producer ↔ consumer: every event a module publishes parses with the model of every group that
consumes it, for every subscription in the registry, with the producer's own example payloads.

Producers are the ``Event`` classes of ``app/*/events.py`` (through ``app.ops.asyncapi.flows``, which
also refuses a subscription to a type nobody defines); a consumer's model is the ``Consumed`` class its
handler validates the payload with (``Model.model_validate(event.data)`` in ``handlers.py``). This is
the one test that may import both sides (STYLE.md).
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar

import pytest
from pydantic import ConfigDict, ValidationError

from app.bus import Consumed, Envelope, Event
from app.ops.asyncapi import flows
from app.system import MODULES, consumers


@dataclass(frozen=True)
class Pairing:
    event_type: str
    group: str
    producer: type[Event]
    consumer: type[Consumed]


def examples(model: type[Event]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = model.model_json_schema().get("examples", [])
    return found


def consumed_models(handler: Any) -> list[type[Consumed]]:
    """The Consumed classes a handler validates a payload with, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(handler)))
    names = {
        node.func.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("model_validate", "model_validate_json")
        and isinstance(node.func.value, ast.Name)
    }
    found = [handler.__globals__.get(name) for name in sorted(names)]
    return [m for m in found if inspect.isclass(m) and issubclass(m, Consumed)]


def pairing(event_type: str, group: str, modules: Mapping[str, Any]) -> Pairing:
    """The checked pairing of one subscription; AssertionError naming what is missing."""
    producers = {flow.event_type: flow.model for flow in flows(modules)}
    assert event_type in producers, f"{group} subscribes to {event_type}, which no events.py defines"
    handler = modules[group].SUBSCRIPTIONS[event_type]
    models = consumed_models(handler)
    assert len(models) == 1, (
        f"{group}'s handler for {event_type} ({handler.__qualname__}) must validate the payload with "
        f"exactly one Consumed model, found {[m.__name__ for m in models]}"
    )
    producer = producers[event_type]
    assert examples(producer), f"{producer.__name__} ({event_type}) has no example payloads"
    return Pairing(event_type, group, producer, models[0])


def check(p: Pairing) -> None:
    """Every example is exactly what the producer emits and parses with the consumer's model, and the
    consumer reads no field the producer does not send (a tolerant reader would default it silently)."""
    sent = {field.alias or name for name, field in p.producer.model_fields.items()}
    read = {field.alias or name for name, field in p.consumer.model_fields.items()}
    assert read <= sent, f"{p.group} reads {sorted(read - sent)} of {p.event_type}, never sent"
    for example in examples(p.producer):
        assert p.producer.model_validate(example).model_dump(mode="json") == example
        envelope = Envelope(type=p.event_type, source="contract", data=example)
        p.consumer.model_validate(envelope.data)


SUBSCRIPTIONS = sorted((event_type, group) for event_type, groups in consumers().items() for group in groups)


def test_every_module_that_subscribes_is_in_the_checked_pairs() -> None:
    listening = {name for name, module in MODULES.items() if module.SUBSCRIPTIONS}
    assert listening and {group for _, group in SUBSCRIPTIONS} == listening


@pytest.mark.parametrize(("event_type", "group"), SUBSCRIPTIONS)
def test_every_example_of_the_producer_parses_with_the_consumer(event_type: str, group: str) -> None:
    check(pairing(event_type, group, MODULES))


@pytest.mark.parametrize("flow", flows(), ids=lambda flow: flow.event_type)
def test_every_published_event_has_examples_the_producer_would_emit(flow: Any) -> None:
    assert examples(flow.model), f"{flow.model.__name__} has no example payloads"
    for example in examples(flow.model):
        assert flow.model.model_validate(example).model_dump(mode="json") == example


# -- the checker itself fails where it should


class ReadsWhat(Consumed):
    what: str


class ReadsMore(Consumed):
    what: str
    missing: str


class ReadsWhatAsNumber(Consumed):
    what: int


def on_announced(uow: object, event: Envelope) -> None:
    ReadsWhat.model_validate(event.data)


def on_announced_reading_more(uow: object, event: Envelope) -> None:
    ReadsMore.model_validate(event.data)


def on_announced_as_number(uow: object, event: Envelope) -> None:
    ReadsWhatAsNumber.model_validate(event.data)


def on_announced_reading_nothing(uow: object, event: Envelope) -> None:
    del uow, event


def fake_modules(
    monkeypatch: pytest.MonkeyPatch, handlers: dict[str, Any], example: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A producer module whose events.py defines ``fake.announced.v1``, and a listener module."""
    events = ModuleType("fake_producer.events")

    class Announced(Event):
        TYPE: ClassVar[str] = "fake.announced.v1"
        model_config = ConfigDict(json_schema_extra={"examples": [example or {"what": "x"}]})
        what: str

    Announced.__module__ = events.__name__
    events.Announced = Announced  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, events.__name__, events)
    return {
        "producer": SimpleNamespace(__name__="fake_producer", SUBSCRIPTIONS={}),
        "listener": SimpleNamespace(__name__="fake_listener", SUBSCRIPTIONS=handlers),
    }


def test_a_matching_consumer_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = fake_modules(monkeypatch, {"fake.announced.v1": on_announced})
    check(pairing("fake.announced.v1", "listener", modules))


def test_a_subscription_to_a_type_nobody_defines_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = fake_modules(monkeypatch, {"fake.vanished.v1": on_announced})
    with pytest.raises(ValueError, match=r"no events\.py defines: \['fake\.vanished\.v1'\]"):
        pairing("fake.vanished.v1", "listener", modules)


def test_a_handler_without_a_consumer_model_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = fake_modules(monkeypatch, {"fake.announced.v1": on_announced_reading_nothing})
    with pytest.raises(AssertionError, match="exactly one Consumed model"):
        pairing("fake.announced.v1", "listener", modules)


def test_a_consumer_reading_a_field_the_producer_never_sends_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = fake_modules(monkeypatch, {"fake.announced.v1": on_announced_reading_more})
    with pytest.raises(AssertionError, match=r"reads \['missing'\]"):
        check(pairing("fake.announced.v1", "listener", modules))


def test_an_example_the_consumer_cannot_parse_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = fake_modules(monkeypatch, {"fake.announced.v1": on_announced_as_number})
    with pytest.raises(ValidationError, match="ReadsWhatAsNumber"):
        check(pairing("fake.announced.v1", "listener", modules))


def test_an_example_the_producer_would_not_emit_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = fake_modules(monkeypatch, {"fake.announced.v1": on_announced}, example={"wat": "x"})
    with pytest.raises(ValidationError, match="Announced"):
        check(pairing("fake.announced.v1", "listener", modules))
