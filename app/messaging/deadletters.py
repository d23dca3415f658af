"""The dead-letter store: events a consumer group gave up on, kept in that group's module database."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)

from app.bus import Envelope, new_id, utcnow
from app.storage.database import Database
from app.storage.sql import Sql
from app.storage.types import UtcDateTime
from app.storage.uow import UnitOfWork


def deadletter_table(metadata: MetaData, module: str) -> Table:
    return Table(
        f"{module}_deadletter",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("group", String(64), nullable=False),
        Column("event_id", String(64), nullable=False),
        Column("type", String(128), nullable=False),
        Column("envelope", LargeBinary, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("redriven_at", UtcDateTime(), nullable=True),
    )


@dataclass(frozen=True)
class Store:
    db: Database
    table: Table

    @functools.cached_property
    def keep(self) -> Sql:
        return Sql.insert(self.table, *(c.name for c in self.table.columns if c.name != "redriven_at"))

    @functools.cached_property
    def mark(self) -> Sql:
        t = self.table
        return Sql(
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.redriven_at.is_(None))
            .values(redriven_at=bindparam("b_now", type_=UtcDateTime))
            .returning(t.c.envelope)
        )


def _all_letters(conn: Connection, table: Table) -> Sequence[RowMapping]:
    return conn.execute(select(table).order_by(table.c.created_at)).mappings().all()


class DeadLetterStore:
    """The bus's dead-letter sink for every group: a group is a module, so its letters go to that
    module's own database and survive restarts."""

    def __init__(self, stores: Mapping[str, Store]) -> None:
        self.stores = dict(stores)

    async def __call__(self, event: Envelope, group: str, error: str) -> None:
        store = self.stores.get(group)
        if store is None:
            return
        letter = {
            "id": new_id(),
            "group": group,
            "event_id": event.id,
            "type": event.type,
            "envelope": event.to_json(),
            "error": error[:2000],
            "attempts": event.attempt,
            "created_at": utcnow(),
        }
        await store.db.transact(lambda uow: uow.run(store.keep, letter))

    async def take(self, letter_id: str) -> tuple[str, Envelope] | None:
        """Mark a letter redriven and return (group, event) to deliver again; None if unknown or
        already redriven. The mark commits first: a crash after it loses a redrive, never doubles one."""
        for group, store in self.stores.items():

            def mark(uow: UnitOfWork, store: Store = store) -> bytes | None:
                row = uow.first(store.mark, {"b_id": letter_id, "b_now": uow.now})
                return None if row is None else bytes(row[0])

            raw = await store.db.transact(mark)
            if raw is not None:
                return group, Envelope.from_json(raw)
        return None

    async def list(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for group, store in self.stores.items():
            t = store.table
            rows = await store.db.query(_all_letters, t)
            for r in rows:
                out.append(
                    {
                        "id": r["id"],
                        "group": group,
                        "eventId": r["event_id"],
                        "type": r["type"],
                        "error": r["error"],
                        "attempts": r["attempts"],
                        "createdAt": r["created_at"],
                        "redrivenAt": r["redriven_at"],
                    }
                )
        return out
