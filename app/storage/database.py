"""One Database per module: a single writer that group-commits units of work, and reads.

Why units of work are plain functions run by the writer, not ``async with`` blocks: with aiosqlite every
statement is a hop to a thread and back through the event loop; under load each hop waits behind the
whole loop, and a createOrder pays ~20 of them (measured here: 88 orders/s, p50 480 ms at 64 clients).
So a unit of work is a synchronous function of a :class:`UnitOfWork`; the writer collects whatever is
queued and runs the lot in one transaction, and COMMITs once (group commit).

No savepoint per unit: the batch runs optimistically, and only when a unit raises is it rolled back
and run again with each unit in a SAVEPOINT, so the one that failed leaves the others committed
exactly once (two SAVEPOINT/RELEASE statements per unit cost ~10 statements per order when every
unit paid for them). Statements are :class:`~app.storage.sql.Sql`, executed on the raw driver
(app/storage/drivers.py): on SQLite right on the event loop (~20 µs a statement; a writer thread only
added GIL hand-offs: 278 → 713 orders/s without it), on PostgreSQL on asyncpg.

Reads come in two kinds. :meth:`Database.read` runs a function of a :class:`Reader` on committed data
at driver cost: on SQLite a read-only connection of its own beside the writer (WAL), on the loop, for
reads by key and short lists. :meth:`Database.query` hands a SQLAlchemy ``Connection`` for the long
reads of operators and tools (the invariant checker, outbox scans), off the loop through aiosqlite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, MetaData, Table, create_engine, event, literal, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import greenlet_spawn

from app.bus import Envelope, utcnow
from app.observe.context import correlation_id, traceparent
from app.storage.drivers import PgCursor, SqliteCursor, open_sqlite, sqlite_path
from app.storage.sql import Reader, Sql, Writer
from app.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(slots=True)
class _Job:
    fn: Callable[[UnitOfWork], Any]
    cause: Envelope | None
    correlation: str
    traceparent: str
    future: asyncio.Future[Any]
    uow: UnitOfWork | None = None
    result: Any = None
    error: Exception | None = None


class _UnitFailed(Exception):
    """A unit raised in an optimistic batch: roll the batch back and run it again, unit by unit."""


class Database:
    """A module's database. ``outbox`` is the module's outbox table, written by every unit of work that
    emits; ``on_commit`` receives each committed batch's events in commit order (the relay's hand-off)."""

    def __init__(
        self,
        name: str,
        url: str,
        metadata: MetaData,
        *,
        outbox: Table | None = None,
        batch_max: int = 512,
    ) -> None:
        self.name, self.url, self.metadata, self.outbox = name, url, metadata, outbox
        self.batch_max = batch_max
        self.on_commit: Callable[[Sequence[Envelope]], None] | None = None
        # runs between a COMMIT and the hand-off of its events (the chaos crash point hooks in here)
        self.after_commit_hook: Callable[[], None] | None = None
        # gets each committed unit's notes, (module, correlation id, login, text): the flow's self-arrows
        self.on_note: Callable[[str, str, str, str], None] | None = None
        self._outbox_insert = (
            Sql.insert(outbox, "id", "type", "subject", "envelope", "created_at")
            if outbox is not None
            else None
        )
        self.is_sqlite = url.startswith("sqlite")
        self._path = sqlite_path(url) if self.is_sqlite else None
        self._memory = self.is_sqlite and self._path is None
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # SQLite: the writer's connection and a read-only one (the same one in memory)
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._reader: SqliteCursor | None = None
        # in-memory SQLite: SQLAlchemy over the one connection, for query() and create_all
        self._memory_engine: Engine | None = None
        # PostgreSQL: asyncpg for writes and fast reads
        self._pool: Any = None
        # long reads (and PostgreSQL's row-locking sweeps): SQLAlchemy's async engine
        self._async_engine: AsyncEngine | None = None
        self._alive = False
        # committed batches and the units in them (their ratio: how well commits are shared)
        self.batches = self.units = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, *, create_tables: bool = True) -> None:
        if self.is_sqlite:
            self._write_conn = open_sqlite(self._path)
            if self._memory:
                self._read_conn = self._write_conn
                conn = self._write_conn
                self._memory_engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)
                if create_tables:
                    self.metadata.create_all(self._memory_engine)
            else:
                assert self._path is not None
                if create_tables:
                    engine = create_engine(f"sqlite:///{self._path}")
                    self.metadata.create_all(engine)
                    engine.dispose()
                self._read_conn = open_sqlite(self._path, readonly=True)
                self._async_engine = _aiosqlite_engine(self._path)
            self._reader = SqliteCursor(self._read_conn)
        else:
            import asyncpg

            self._async_engine = create_async_engine(
                self.url, pool_size=2, max_overflow=3, pool_pre_ping=True
            )
            if create_tables:
                async with self._async_engine.begin() as aconn:
                    await aconn.run_sync(self.metadata.create_all)
            dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
            self._pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8, reset=_keep_session)
        self._writer = asyncio.create_task(self._write_loop(), name=f"{self.name}-writer")
        self._alive = True

    async def stop(self) -> None:
        self._alive = False
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._async_engine is not None:
            await self._async_engine.dispose()
        if self._memory_engine is not None:
            self._memory_engine.dispose()
        for conn in {id(c): c for c in (self._read_conn, self._write_conn) if c is not None}.values():
            conn.close()
        self._read_conn = self._write_conn = self._reader = None
        if self._pool is not None:
            await self._pool.close()

    async def ping(self) -> bool:
        if not self._alive or self._writer is None or self._writer.done():
            return False
        try:
            await self.read(lambda r: r.first(_PING))
        except Exception:
            return False
        return True

    # -- writing -----------------------------------------------------------------------------------

    async def transact(
        self,
        fn: Callable[Concatenate[UnitOfWork, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(uow, *args)`` as one unit of work and return its result once it has COMMITTED.

        ``fn`` is synchronous and touches only this database through ``uow``; the events it emits go to
        the outbox in the same transaction. An exception it raises rolls back everything it did and is
        raised here. A caller cancelled while waiting may still have its unit committed."""
        return await self._submit(lambda uow: fn(uow, *args, **kwargs), None)

    async def consume(self, fn: Callable[[UnitOfWork], T], cause: Envelope) -> T:
        """As :meth:`transact`, for handling ``cause``: emitted events carry its correlation id."""
        return await self._submit(fn, cause)

    async def _submit(self, fn: Callable[[UnitOfWork], T], cause: Envelope | None) -> T:
        if not self._alive:
            raise RuntimeError(f"database {self.name} is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(fn, cause, correlation_id.get(), traceparent.get(), future))
        return await future

    async def _write_loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            # one turn of the loop before the batch closes: what the other ready tasks submit in it
            # shares this COMMIT (it costs the first unit that turn, idle or not)
            await asyncio.sleep(0)
            while len(jobs) < self.batch_max and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            jobs = [j for j in jobs if not j.future.cancelled()]
            if not jobs:
                continue
            try:
                if self._write_conn is not None:
                    self._sqlite_batch(SqliteCursor(self._write_conn), jobs)
                    await asyncio.sleep(0)  # let the loop run between batches
                else:
                    await self._pg_batch(jobs)
            except asyncio.CancelledError:
                self._fail(jobs, RuntimeError(f"database {self.name} stopped"))
                raise
            except Exception as exc:
                log.exception("commit of %d units failed in %s", len(jobs), self.name)
                self._fail(jobs, exc)
                continue
            if self.after_commit_hook is not None:
                self.after_commit_hook()
            self.batches += 1
            self.units += len(jobs)
            self._committed(jobs)

    def _sqlite_batch(self, cursor: SqliteCursor, jobs: list[_Job]) -> None:
        for careful in (False, True):
            cursor.exec("BEGIN IMMEDIATE")
            try:
                self._run_batch(cursor, jobs, careful=careful)
                cursor.exec("COMMIT")
                return
            except _UnitFailed:
                cursor.exec("ROLLBACK")
            except BaseException:
                if cursor.conn.in_transaction:
                    cursor.exec("ROLLBACK")
                raise

    async def _pg_batch(self, jobs: list[_Job]) -> None:
        async with self._pool.acquire() as conn:
            for careful in (False, True):
                try:
                    async with conn.transaction():
                        await greenlet_spawn(partial(self._run_batch, careful=careful), PgCursor(conn), jobs)
                    return
                except _UnitFailed:
                    continue

    def _run_batch(self, cursor: Writer, jobs: list[_Job], *, careful: bool) -> None:
        """Every job in one transaction. Optimistic (``careful=False``): the first unit that raises
        stops the batch (:class:`_UnitFailed`, the caller rolls back and runs it again careful). Careful:
        each unit in a SAVEPOINT, a failing one rolled back alone."""
        events: list[Envelope] = []
        now = utcnow()
        for job in jobs:
            uow = UnitOfWork(self.name, cursor, now, job.cause, job.correlation, job.traceparent)
            job.uow, job.error = None, None
            # log lines written by the unit carry its flow's correlation id
            token = correlation_id.set(job.cause.correlationid if job.cause else job.correlation)
            try:
                if careful:
                    cursor.exec("SAVEPOINT uow")
                try:
                    job.result = job.fn(uow)
                except Exception as exc:
                    if not careful:
                        raise _UnitFailed from exc
                    cursor.exec("ROLLBACK TO SAVEPOINT uow")
                    cursor.exec("RELEASE SAVEPOINT uow")
                    job.error = exc
                    continue
                if careful:
                    cursor.exec("RELEASE SAVEPOINT uow")
                job.uow = uow
                events.extend(uow.events)
            finally:
                correlation_id.reset(token)
        if events:
            # one statement for the batch's outbox rows, in the same transaction as their units: a
            # failure here fails the whole batch, like a failed COMMIT
            self._write_outbox(cursor, events, now)

    def _write_outbox(self, cursor: Writer, events: Iterable[Envelope], now: datetime) -> None:
        if self._outbox_insert is None:
            raise RuntimeError(f"module {self.name} emitted events but has no outbox")
        cursor.many(
            self._outbox_insert,
            [
                {"id": e.id, "type": e.type, "subject": e.subject, "envelope": e.to_json(), "created_at": now}
                for e in events
            ],
        )

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(job.error or exc)

    def _committed(self, jobs: list[_Job]) -> None:
        events: list[Envelope] = []
        for job in jobs:
            if job.error is not None:
                if not job.future.done():
                    job.future.set_exception(job.error)
                continue
            assert job.uow is not None
            if not job.future.done():
                job.future.set_result(job.result)
            for callback in job.uow._after_commit:
                try:
                    callback()
                except Exception:
                    log.exception("after-commit callback failed in %s", self.name)
            if job.uow.notes and self.on_note is not None:
                cid = job.uow.flow_id()
                for login, text in job.uow.notes:
                    self.on_note(self.name, cid, login, text)
            events.extend(job.uow.events)
        if events and self.on_commit is not None:
            self.on_commit(events)

    # -- reading -----------------------------------------------------------------------------------

    async def read(self, fn: Callable[Concatenate[Reader, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(reader, *args)`` against committed data at driver cost; ``fn`` must only read, and
        only a little (by key, a short list): on SQLite it runs on the event loop."""
        if self._reader is not None:
            return fn(self._reader, *args, **kwargs)
        if self._pool is None:
            raise RuntimeError(f"database {self.name} is not running")
        async with self._pool.acquire() as conn:
            result: T = await greenlet_spawn(partial(fn, PgCursor(conn), *args, **kwargs))
            return result

    async def query(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, *args)`` on a SQLAlchemy connection against committed data: for long reads
        (operators, tools), off the event loop. ``fn`` must only read."""

        def run(conn: Connection) -> T:
            return fn(conn, *args, **kwargs)

        if self._memory_engine is not None:
            # in-memory SQLite is one connection: a read takes it between two of the writer's batches
            with self._memory_engine.connect() as conn:
                return run(conn)
        if self._async_engine is None:
            raise RuntimeError(f"database {self.name} is not running")
        async with self._async_engine.connect() as aconn:
            result: T = await aconn.run_sync(run)
            return result

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection of its own, outside the writer: for work that must hold row locks across awaits
        (the relay's PostgreSQL claims). Not for in-memory SQLite."""
        if self._async_engine is None:
            raise RuntimeError(f"database {self.name} has no connection pool")
        async with self._async_engine.connect() as conn:
            yield conn


_PING = Sql(select(literal(1)), "ping")


async def _keep_session(_conn: Any) -> None:
    """Released pool connections keep their session. They carry no session state (no SET, LISTEN or
    advisory lock: LISTEN/NOTIFY and migrations use connections of their own), and asyncpg still rolls
    back a transaction left open before this runs; its default reset query was a round trip on every
    release (3.6 % of an orders replica's CPU under load, py-spy)."""


def _aiosqlite_engine(path: str) -> AsyncEngine:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=2, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine
