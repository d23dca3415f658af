"""The two drivers a Database executes :class:`~app.storage.sql.Sql` on: stdlib ``sqlite3`` and asyncpg.

Units of work are synchronous functions (see database.py for why). On SQLite they run on the event
loop over a ``sqlite3`` connection in autocommit mode, the writer issuing ``BEGIN IMMEDIATE`` and
``COMMIT`` itself. On PostgreSQL they run inside ``greenlet_spawn`` (SQLAlchemy's bridge, the one its
own asyncio support runs on), where ``await_only`` lets synchronous code await asyncpg.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.util import await_only

from app.storage.sql import Params, Row, Sql

SQLITE: Dialect = sqlite.dialect()
POSTGRESQL: Dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite+aiosqlite:///path`` URL names, or None for an in-memory database."""
    rest = url.split("://", 1)[1]
    if rest in ("", "/") or ":memory:" in rest:
        return None
    return rest[1:] if rest.startswith("/") else rest


def open_sqlite(path: str | None, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (the writer says BEGIN and COMMIT), WAL for files."""
    if path is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        # WAL + NORMAL: a committed transaction survives kill -9 (not a power cut: docs/operations.md);
        # WAL also lets a read connection read beside the writer
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


class SqliteCursor:
    """Statements on a ``sqlite3`` connection, on the calling thread (the event loop's)."""

    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def run(self, sql: Sql, params: Params | None = None) -> int:
        c = sql.on(SQLITE)
        cur = self.conn.execute(c.text, c.args(params))
        if c.row is not None:
            cur.fetchall()  # RETURNING: the count is known once the rows are read
        return cur.rowcount

    def first(self, sql: Sql, params: Params | None = None) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def all(self, sql: Sql, params: Params | None = None) -> list[Row]:
        c = sql.on(SQLITE)
        # read to the end: an unfinished statement would hold its read snapshot (and block checkpoints)
        return c.rows(self.conn.execute(c.text, c.args(params)).fetchall())

    def many(self, sql: Sql, params: Sequence[Params]) -> None:
        c = sql.on(SQLITE)
        self.conn.executemany(c.text, [c.args(p) for p in params])

    def exec(self, text: str) -> None:
        self.conn.execute(text)


class PgCursor:
    """Statements on an asyncpg connection, from synchronous code inside ``greenlet_spawn``. asyncpg
    prepares each text once per connection and keeps the plan (its statement cache)."""

    dialect = POSTGRESQL

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def run(self, sql: Sql, params: Params | None = None) -> int:
        c = sql.on(POSTGRESQL)
        if c.row is not None:
            return len(await_only(self.conn.fetch(c.text, *c.args(params))))
        status: str = await_only(self.conn.execute(c.text, *c.args(params)))
        # "INSERT 0 1", "UPDATE 3", "DELETE 0": the count is the last word
        return int(status.rsplit(" ", 1)[-1])

    def first(self, sql: Sql, params: Params | None = None) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def all(self, sql: Sql, params: Params | None = None) -> list[Row]:
        c = sql.on(POSTGRESQL)
        return c.rows(await_only(self.conn.fetch(c.text, *c.args(params))))

    def many(self, sql: Sql, params: Sequence[Params]) -> None:
        c = sql.on(POSTGRESQL)
        await_only(self.conn.executemany(c.text, [c.args(p) for p in params]))

    def exec(self, text: str) -> None:
        await_only(self.conn.execute(text))
