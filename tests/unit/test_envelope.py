"""The envelope on the wire, and the correlation and causation ids a unit of work stamps on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import ClassVar

import orjson
import pytest
from sqlalchemy import MetaData

from app.bus import Envelope, Event
from app.messaging.outbox import outbox_table
from app.observe.context import correlation_id, traceparent
from app.storage.database import Database
from app.storage.uow import UnitOfWork


class Pinged(Event):
    TYPE: ClassVar[str] = "test.pinged.v1"

    n: int


def sample() -> Envelope:
    return Envelope(
        type="test.pinged.v1",
        source="test",
        subject="alice",
        data={"n": 1, "nested": {"list": [1, "two", None]}, "text": "naïve €"},
        correlationid="corr-1",
        causationid="cause-1",
    )


def test_envelope_survives_a_json_round_trip() -> None:
    event = sample()
    back = Envelope.from_json(event.to_json())
    assert back == event
    assert (back.id, back.time, back.correlationid, back.causationid) == (
        event.id,
        event.time,
        "corr-1",
        "cause-1",
    )
    assert Envelope.from_json(event.to_json().decode()) == event


def test_wire_form_is_a_cloudevent_without_the_attempt() -> None:
    wire = orjson.loads(sample().delivered(4).to_json())
    assert wire["specversion"] == "1.0"
    assert wire["datacontenttype"] == "application/json"
    assert "attempt" not in wire
    assert "attempt" not in orjson.dumps(wire).decode()


def test_an_envelope_read_from_the_wire_is_a_first_delivery() -> None:
    assert Envelope.from_json(sample().delivered(4).to_json()).attempt == 1


def test_delivered_sets_the_attempt_on_a_copy_of_the_same_event() -> None:
    event = sample()
    third = event.delivered(3)
    assert third.attempt == 3
    assert event.attempt == 1
    assert third == event
    assert third.id == event.id


def test_missing_optional_fields_read_as_empty() -> None:
    event = Envelope.from_json(b'{"id": "e1", "type": "test.pinged.v1", "source": "test"}')
    assert (event.data, event.subject, event.correlationid, event.causationid) == ({}, "", "", "")


def test_each_envelope_gets_its_own_id() -> None:
    assert sample().id != sample().id


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    metadata = MetaData()
    database = Database("test", "sqlite+aiosqlite://", metadata, outbox=outbox_table(metadata, "test"))
    await database.start()
    try:
        yield database
    finally:
        await database.stop()


def ping(uow: UnitOfWork) -> Envelope:
    return uow.emit(Pinged(n=1), subject="alice")


async def test_emit_caused_by_an_event_carries_its_correlation_and_names_it_the_cause(db: Database) -> None:
    cause = sample()
    emitted = await db.consume(ping, cause)
    assert (emitted.correlationid, emitted.causationid) == ("corr-1", cause.id)
    assert (emitted.type, emitted.source, emitted.subject, emitted.data) == (
        "test.pinged.v1",
        "test",
        "alice",
        {"n": 1},
    )


async def test_emit_caused_by_an_event_without_correlation_starts_it_at_the_cause(db: Database) -> None:
    cause = Envelope(type="test.started.v1", source="test", data={})
    emitted = await db.consume(ping, cause)
    assert (emitted.correlationid, emitted.causationid) == (cause.id, cause.id)


async def test_emit_without_a_cause_takes_the_request_correlation_id(db: Database) -> None:
    token = correlation_id.set("req-42")
    try:
        emitted = await db.transact(ping)
    finally:
        correlation_id.reset(token)
    assert (emitted.correlationid, emitted.causationid) == ("req-42", "req-42")


async def test_emit_without_a_cause_or_request_starts_a_new_correlation(db: Database) -> None:
    first = await db.transact(ping)
    second = await db.transact(ping)
    assert first.correlationid
    assert first.causationid == first.correlationid
    assert first.correlationid != second.correlationid


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_traceparent_survives_a_json_round_trip_as_the_cloudevents_extension() -> None:
    event = replace(sample(), traceparent=TRACEPARENT)
    assert orjson.loads(event.to_json())["traceparent"] == TRACEPARENT
    back = Envelope.from_json(event.to_json())
    assert back == event
    assert back.traceparent == TRACEPARENT


def test_an_envelope_without_a_traceparent_has_none_on_the_wire() -> None:
    assert "traceparent" not in orjson.loads(sample().to_json())


def test_an_envelope_from_before_tracing_still_parses() -> None:
    old = (
        b'{"specversion": "1.0", "id": "e1", "type": "test.pinged.v1", "source": "test", "subject": "alice",'
        b' "time": "2024-01-01T00:00:00+00:00", "correlationid": "c", "causationid": "c",'
        b' "datacontenttype": "application/json", "data": {"n": 1}}'
    )
    event = Envelope.from_json(old)
    assert (event.id, event.traceparent, event.data) == ("e1", "", {"n": 1})


async def test_emit_stamps_the_current_traceparent(db: Database) -> None:
    token = traceparent.set(TRACEPARENT)
    try:
        emitted = await db.consume(ping, sample())
    finally:
        traceparent.reset(token)
    assert emitted.traceparent == TRACEPARENT
    assert (await db.transact(ping)).traceparent == ""
