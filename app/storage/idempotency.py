"""Idempotency keys: a retry with the same key and body replays the first answer; another body is 422."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import Column, LargeBinary, MetaData, String, Table, delete, select, update

from app.bus import utcnow
from app.problems import BadRequest, Problem
from app.storage.database import Database, UnitOfWork
from app.storage.types import UtcDateTime

MAX_KEY = 255


def idempotency_table(metadata: MetaData, module: str) -> Table:
    return Table(
        f"{module}_idempotency",
        metadata,
        Column("scope", String(128), primary_key=True),  # "<endpoint>:<login>"
        Column("key", String(MAX_KEY), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("resource_id", String(64), nullable=False),
        Column("response", LargeBinary, nullable=True),
        Column("created_at", UtcDateTime(), nullable=False, index=True),
    )


class KeyReused(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency key reused"


def fingerprint(body: BaseModel) -> str:
    raw = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY} printable characters")
    return key


@dataclass(frozen=True, slots=True)
class Earlier:
    resource_id: str
    response: Any


def claim(uow: UnitOfWork, table: Table, scope: str, key: str, fp: str, resource_id: str) -> Earlier | None:
    """Record ``key`` in this unit of work. None: first use, go on. Else the earlier use to replay.

    The key row commits or rolls back with the effect it guards, so no effect happens without its
    key, and a concurrent retry runs after the first (single writer) and finds it."""
    inserted = uow.conn.execute(
        uow.insert_ignore(table),
        {
            "scope": scope,
            "key": key,
            "fingerprint": fp,
            "resource_id": resource_id,
            "response": None,
            "created_at": utcnow(),
        },
    )
    if inserted.rowcount:
        return None
    row = (
        uow.conn.execute(
            select(table.c.fingerprint, table.c.resource_id, table.c.response).where(
                table.c.scope == scope, table.c.key == key
            )
        )
    ).one()
    if row.fingerprint != fp:
        raise KeyReused("this Idempotency-Key was used with a different request body")
    return Earlier(row.resource_id, orjson.loads(row.response) if row.response else None)


def remember(uow: UnitOfWork, table: Table, scope: str, key: str, response: Any) -> None:
    """Keep the answer of the first use, for a replay to return as it was."""
    uow.conn.execute(
        update(table)
        .where(table.c.scope == scope, table.c.key == key)
        .values(response=orjson.dumps(response))
    )


async def prune(db: Database, table: Table, older_than: timedelta) -> int:
    cutoff = utcnow() - older_than
    return await db.transact(
        lambda uow: int(uow.conn.execute(delete(table).where(table.c.created_at < cutoff)).rowcount)
    )
