"""One Database per module: its engine, a single writer task that group-commits units of work, and reads.

SQLite takes one writer at a time and aiosqlite pays a thread hop per statement, so one transaction per
request tops out near 0.5k tx/s here. Instead every unit of work queues for the writer task, runs inside
a SAVEPOINT of the writer's open transaction, and the writer commits whatever queued meanwhile in one
COMMIT (group commit). A failing unit rolls back to its savepoint and leaves the batch intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Insert, MetaData, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from app.bus import Envelope, Event, new_id, utcnow

log = logging.getLogger(__name__)

# the correlation id of the HTTP request being served; events emitted without a cause carry it
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="")


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and read back timezone-aware on every dialect (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_ignore(dialect: Dialect, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the dialects we run on; rowcount tells if it inserted."""
    if dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


@dataclass(slots=True)
class UnitOfWork:
    """One atomic change to a module's database, with the events it causes."""

    db: Database
    conn: AsyncConnection
    cause: Envelope | None = None
    events: list[Envelope] = field(default_factory=list)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, payload: Event, *, subject: str = "") -> Envelope:
        """Record an event to publish; it goes to this module's outbox in this same transaction."""
        if self.cause is not None:
            correlation, causation = self.cause.correlationid or self.cause.id, self.cause.id
        else:
            correlation = correlation_id.get() or new_id()
            causation = correlation
        envelope = Envelope(
            type=payload.TYPE,
            source=self.db.name,
            data=payload.model_dump(mode="json"),
            subject=subject,
            correlationid=correlation,
            causationid=causation,
        )
        self.events.append(envelope)
        return envelope

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction holding this unit has committed (never on rollback)."""
        self._after_commit.append(callback)

    def insert_ignore(self, table: Table) -> Insert:
        return insert_ignore(self.conn.dialect, table)


class Signals:
    """Wake waiters in this process when a commit settles something they wait for (an order's reply).
    Fired from after-commit callbacks, so a waiter never sees a state that could still roll back."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def expect(self, key: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(fut)
        return fut

    def discard(self, key: str, fut: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[key]

    def fire(self, key: str) -> None:
        for fut in self._waiters.pop(key, ()):
            if not fut.done():
                fut.set_result(None)


class _Request:
    __slots__ = ("committed", "done", "granted", "uow")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.granted: asyncio.Future[AsyncConnection] = loop.create_future()
        self.done: asyncio.Future[bool] = loop.create_future()
        self.committed: asyncio.Future[None] = loop.create_future()
        self.uow: UnitOfWork | None = None


class Database:
    """A module's database. ``outbox`` is the module's outbox table, written by :meth:`unit_of_work`;
    ``on_commit`` receives each committed batch's events in commit order (the relay's hand-off)."""

    def __init__(
        self,
        name: str,
        url: str,
        metadata: MetaData,
        *,
        outbox: Table | None = None,
        batch_max: int = 256,
    ) -> None:
        self.name, self.url, self.metadata, self.outbox = name, url, metadata, outbox
        self.batch_max = batch_max
        self.on_commit: Callable[[Sequence[Envelope]], None] | None = None
        self.signals = Signals()
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._memory = url.startswith("sqlite") and (":memory:" in url or url.rstrip("/").endswith(":"))
        self._write_engine: AsyncEngine | None = None
        self._read_engine: AsyncEngine | None = None
        self._alive = False

    @property
    def dialect_name(self) -> str:
        return self.url.split("+", 1)[0].split(":", 1)[0]

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, *, create_tables: bool = True) -> None:
        self._write_engine = self._engine(pool_size=1)
        self._read_engine = self._write_engine if self._memory else self._engine(pool_size=4)
        if create_tables:
            async with self._write_engine.begin() as conn:
                await conn.run_sync(self.metadata.create_all)
        self._writer = asyncio.create_task(self._write_loop(), name=f"{self.name}-writer")
        self._alive = True

    async def stop(self) -> None:
        self._alive = False
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        for engine in {self._write_engine, self._read_engine}:
            if engine is not None:
                await engine.dispose()

    async def ping(self) -> bool:
        if not self._alive or self._writer is None or self._writer.done():
            return False
        try:
            async with self.read() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def _engine(self, *, pool_size: int) -> AsyncEngine:
        if not self.url.startswith("sqlite"):
            return create_async_engine(self.url, pool_size=pool_size, max_overflow=2, pool_pre_ping=True)
        if not self._memory:
            path = self.url.split("///", 1)[1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"poolclass": StaticPool} if self._memory else {"pool_size": pool_size}
        engine = create_async_engine(self.url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # take transactions out of the driver's hands so SAVEPOINTs work (SQLAlchemy's pysqlite recipe)
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if not self._memory:
                # WAL + NORMAL: a committed transaction survives kill -9 (not a power cut: see README)
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.engine is self._write_engine_sync else "BEGIN")

        return engine

    @property
    def _write_engine_sync(self) -> Any:
        return self._write_engine.sync_engine if self._write_engine is not None else None

    # -- writing -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def unit_of_work(self, cause: Envelope | None = None) -> AsyncIterator[UnitOfWork]:
        """Commit on clean exit, roll back on an exception (which propagates).

        Returns from the ``async with`` only after the COMMIT is durable; the outbox rows of the events
        emitted are in that same transaction. The body must touch only this database: it runs while the
        writer waits for it, so awaiting another unit of work of the same database inside would deadlock.
        """
        if not self._alive:
            raise RuntimeError(f"database {self.name} is not running")
        req = _Request(asyncio.get_running_loop())
        self._queue.put_nowait(req)
        try:
            conn = await req.granted
        except asyncio.CancelledError:
            if req.granted.done() and not req.granted.cancelled():
                req.done.set_result(False)
            else:
                req.granted.cancel()
            raise
        uow = req.uow = UnitOfWork(self, conn, cause)
        try:
            yield uow
            if uow.events:
                await self._write_outbox(conn, uow.events)
        except BaseException:
            req.done.set_result(False)
            raise
        req.done.set_result(True)
        # shielded: a caller that goes away now still gets its commit, and the writer (not the caller)
        # runs the after-commit work, so a cancelled request cannot lose its relay hand-off
        await asyncio.shield(req.committed)

    async def _write_outbox(self, conn: AsyncConnection, events: Iterable[Envelope]) -> None:
        if self.outbox is None:
            raise RuntimeError(f"module {self.name} emitted events but has no outbox")
        now = utcnow()
        await conn.execute(
            self.outbox.insert(),
            [
                {"id": e.id, "type": e.type, "subject": e.subject, "envelope": e.to_json(), "created_at": now}
                for e in events
            ],
        )

    async def _write_loop(self) -> None:
        assert self._write_engine is not None
        while True:
            try:
                async with self._write_engine.connect() as conn:
                    while True:
                        first = await self._queue.get()
                        await self._run_batch(conn, first)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writer of %s lost its connection; reconnecting", self.name)
                await asyncio.sleep(0.5)

    async def _run_batch(self, conn: AsyncConnection, first: _Request) -> None:
        batch: list[_Request] = []
        req: _Request | None = first
        trans = await conn.begin()
        try:
            while req is not None:
                if not req.granted.cancelled():
                    savepoint = await conn.begin_nested()
                    req.granted.set_result(conn)
                    if await req.done:
                        await savepoint.commit()
                        batch.append(req)
                    else:
                        await savepoint.rollback()
                req = (
                    None if len(batch) >= self.batch_max or self._queue.empty() else self._queue.get_nowait()
                )
            await trans.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await trans.rollback()
            failure = exc if isinstance(exc, Exception) else RuntimeError(f"writer of {self.name} stopped")
            for r in [*batch, *([req] if req is not None else [])]:
                if not r.committed.done() and not (r.done.done() and r.done.result() is False):
                    r.committed.set_exception(failure)
            raise
        events: list[Envelope] = []
        for r in batch:
            assert r.uow is not None
            r.committed.set_result(None)
            for callback in r.uow._after_commit:
                try:
                    callback()
                except Exception:
                    log.exception("after-commit callback failed in %s", self.name)
            events.extend(r.uow.events)
        if events and self.on_commit is not None:
            self.on_commit(events)

    # -- reading -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection that sees committed data. In-memory SQLite has one connection: reads queue
        behind the writer there, as a unit of work that changes nothing."""
        if self._memory:
            async with self.unit_of_work() as uow:
                yield uow.conn
            return
        assert self._read_engine is not None
        async with self._read_engine.connect() as conn:
            yield conn
