"""PostgreSQL LISTEN/NOTIFY on a channel of its own: a wake-up that reaches every replica on the
database. Sent after a commit, off the hot path, in batches; a lost notification only costs the
listener latency (whoever waits must fall back to reading the row, which is the truth)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


def libpq_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's form) as the plain DSN asyncpg connects with."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgChannel:
    """LISTEN/NOTIFY over two dedicated asyncpg connections (one listens, one sends in batches).
    ``heard(payload)`` runs on the event loop for every notification on ``channel``, ours included."""

    def __init__(self, dsn: str, channel: str, heard: Callable[[str], None]) -> None:
        self.dsn, self.channel, self.heard = dsn, channel, heard
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._listen: Any = None
        self._send: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import asyncpg

        self._listen = await asyncpg.connect(self.dsn)
        await self._listen.add_listener(self.channel, self._on_notify)
        self._send = await asyncpg.connect(self.dsn)
        self._task = asyncio.create_task(self._sender(), name=f"{self.channel}-notify")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in (self._listen, self._send):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    def send(self, payload: str) -> None:
        self._queue.put_nowait(payload)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.heard(payload)

    async def _sender(self) -> None:
        while True:
            keys = [await self._queue.get()]
            while not self._queue.empty() and len(keys) < 500:
                keys.append(self._queue.get_nowait())
            try:
                await self._send.execute(
                    "SELECT pg_notify($1, k) FROM unnest($2::text[]) AS k", self.channel, keys
                )
            except Exception:
                log.exception("could not notify %d keys on %s", len(keys), self.channel)
