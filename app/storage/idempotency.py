"""Idempotency keys: a retry with the same key and body replays the first answer; another body is 422."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import Column, LargeBinary, MetaData, String, Table, bindparam, delete, select, update

from app.bus import utcnow
from app.problems import BadRequest, Problem
from app.storage.database import Database
from app.storage.sql import Sql
from app.storage.types import UtcDateTime
from app.storage.uow import UnitOfWork

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
    if not key or len(key) > MAX_KEY or not (key.isascii() and key.isprintable()):
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY} printable ASCII characters")
    return key


@dataclass(frozen=True, slots=True)
class Earlier:
    resource_id: str
    response: Any


@dataclass(frozen=True, slots=True)
class _Statements:
    claim: Sql
    earlier: Sql
    remember: Sql
    prune: Sql


@functools.cache
def _statements(table: Table) -> _Statements:
    c = table.c
    key = (c.scope == bindparam("b_scope"), c.key == bindparam("b_key"))
    return _Statements(
        claim=Sql.insert(table, ignore=True),
        earlier=Sql(select(c.fingerprint, c.resource_id, c.response).where(*key)),
        remember=Sql(update(table).where(*key).values(response=bindparam("b_response"))),
        prune=Sql(delete(table).where(c.created_at < bindparam("b_cutoff", type_=UtcDateTime))),
    )


def claim(uow: UnitOfWork, table: Table, scope: str, key: str, fp: str, resource_id: str) -> Earlier | None:
    """Record ``key`` in this unit of work. None: first use, go on. Else the earlier use to replay.

    The key row commits or rolls back with the effect it guards, so no effect happens without its
    key, and a concurrent retry runs after the first (single writer) and finds it."""
    sql = _statements(table)
    row = {"scope": scope, "key": key, "fingerprint": fp, "resource_id": resource_id, "response": None}
    if uow.run(sql.claim, {**row, "created_at": uow.now}):
        return None
    earlier = uow.first(sql.earlier, {"b_scope": scope, "b_key": key})
    assert earlier is not None  # the insert found it taken, in this same transaction
    if earlier.fingerprint != fp:
        raise KeyReused("this Idempotency-Key was used with a different request body")
    return Earlier(earlier.resource_id, orjson.loads(earlier.response) if earlier.response else None)


def remember(uow: UnitOfWork, table: Table, scope: str, key: str, response: Any) -> None:
    """Keep the answer of the first use, for a replay to return as it was."""
    params = {"b_scope": scope, "b_key": key, "b_response": orjson.dumps(response)}
    uow.run(_statements(table).remember, params)


async def prune(db: Database, table: Table, older_than: timedelta) -> int:
    cutoff = utcnow() - older_than
    return await db.transact(lambda uow: uow.run(_statements(table).prune, {"b_cutoff": cutoff}))
