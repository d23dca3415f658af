"""Statements on the driver (app/storage/sql.py, drivers.py) mean what SQLAlchemy would make of them."""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, select, update

from app.bus import new_id
from app.storage.drivers import SqliteCursor
from app.storage.sql import Sql
from app.storage.types import UtcDateTime

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)
ADD = Sql.insert(things, "id", "state", "at")
ADD_ONCE = Sql.insert(things, "id", "state", "at", ignore=True)
# the literal "new" is bound at compile time; the caller names only b_id and b_state
MOVE = Sql(
    update(things)
    .where(things.c.id == bindparam("b_id"), things.c.state == "new")
    .values(state=bindparam("b_state"))
    .returning(things.c.id, things.c.state, things.c.at)
)
GET = Sql(select(things.c.id, things.c.at).where(things.c.id == bindparam("b_id")))


@pytest.fixture
def cursor() -> SqliteCursor:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    metadata.create_all(create_engine("sqlite://", creator=lambda: conn))
    return SqliteCursor(conn)


def test_a_row_written_on_the_driver_reads_back_the_same_through_sqlalchemy(cursor: SqliteCursor) -> None:
    at = datetime(2026, 12, 1, 20, 15, 1, 123, tzinfo=UTC)
    assert cursor.run(ADD, {"id": "a", "state": "new", "at": at}) == 1
    engine = create_engine("sqlite://", creator=lambda: cursor.conn)
    with engine.connect() as conn:
        row = conn.execute(select(things.c.at)).one()
        raw = conn.exec_driver_sql("SELECT at FROM things").scalar_one()
    assert row.at == at  # SQLAlchemy parses what the driver wrote, zone and all
    assert raw == "2026-12-01 20:15:01.000123"  # SQLAlchemy's own text form, microseconds always shown


def test_an_aware_time_in_another_zone_is_stored_in_utc_and_a_naive_one_refused(cursor: SqliteCursor) -> None:
    at = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    cursor.run(ADD, {"id": "z", "state": "new", "at": at.astimezone(timezone(timedelta(hours=2)))})
    row = cursor.first(GET, {"b_id": "z"})
    assert row is not None and row.at == at and row.at.tzinfo == UTC
    with pytest.raises(ValueError, match="naive"):
        cursor.run(ADD, {"id": "n", "state": "new", "at": datetime(2026, 12, 1)})


def test_insert_ignore_counts_only_the_first_and_update_returns_processed_rows(cursor: SqliteCursor) -> None:
    at = datetime.now(UTC)
    assert cursor.run(ADD_ONCE, {"id": "a", "state": "new", "at": at}) == 1
    assert cursor.run(ADD_ONCE, {"id": "a", "state": "other", "at": at}) == 0
    moved = cursor.all(MOVE, {"b_id": "a", "b_state": "done"})
    assert [(r.id, r.state, r.at) for r in moved] == [("a", "done", at)]
    # the literal in the WHERE clause holds: a row no longer "new" does not move again
    assert cursor.all(MOVE, {"b_id": "a", "b_state": "again"}) == []
    assert cursor.run(MOVE, {"b_id": "a", "b_state": "again"}) == 0


def test_many_runs_one_statement_for_every_row(cursor: SqliteCursor) -> None:
    at = datetime.now(UTC)
    cursor.many(ADD, [{"id": f"r{i}", "state": "new", "at": at} for i in range(50)])
    assert len([r for i in range(50) if (r := cursor.first(GET, {"b_id": f"r{i}"})) is not None]) == 50


def test_ids_are_uuid7_and_grow_with_time() -> None:
    first = new_id()
    # past the first id's millisecond (its leading 48 bits are the Unix time in ms), then 1,000 more
    deadline = time.monotonic() + 1
    while new_id()[:12] == first[:12] and time.monotonic() < deadline:
        pass
    later = [new_id() for _ in range(1000)]
    parsed = uuid.UUID(first)
    assert len(first) == 32 and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert all(first < i for i in later)
    assert len(set(later)) == len(later)
    assert abs(int(first[:12], 16) - time.time() * 1000) < 5_000
