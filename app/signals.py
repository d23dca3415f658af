"""Wake-ups for requests waiting on a commit (the createOrder reply), within and across replicas.

In one process a settle's after-commit callback wakes the waiter directly, handing it the settled row.
With several replicas on PostgreSQL the replica that consumed the outcome may not hold the request:
it also sends ``NOTIFY <module>_signals, '<key>'`` on a connection of its own, after the commit and off
the hot path, and every replica LISTENs, waking its local waiters without a value (they read the row,
which is the truth). A lost notification costs only latency: the waiter times out, reads the row and
answers 200 if settled, else 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


class Signals:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[Any]]] = {}
        self.channel: PgChannel | None = None

    def expect(self, key: str) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(fut)
        return fut

    def discard(self, key: str, fut: asyncio.Future[Any]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[key]

    def fire(self, key: str, value: Any = None, *, broadcast: bool = True) -> None:
        """Wake this process's waiters on ``key`` with ``value``; tell the other replicas too."""
        for fut in self._waiters.pop(key, ()):
            if not fut.done():
                fut.set_result(value)
        if broadcast and self.channel is not None:
            self.channel.send(key)


class PgChannel:
    """LISTEN/NOTIFY over two dedicated asyncpg connections (one listens, one sends in batches)."""

    def __init__(self, dsn: str, channel: str, signals: Signals) -> None:
        self.dsn, self.channel, self.signals = dsn, channel, signals
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._listen: Any = None
        self._send: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import asyncpg

        self._listen = await asyncpg.connect(self.dsn)
        await self._listen.add_listener(self.channel, self._heard)
        self._send = await asyncpg.connect(self.dsn)
        self._task = asyncio.create_task(self._sender(), name=f"{self.channel}-notify")
        self.signals.channel = self

    async def stop(self) -> None:
        self.signals.channel = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in (self._listen, self._send):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    def send(self, key: str) -> None:
        self._queue.put_nowait(key)

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.signals.fire(payload, None, broadcast=False)

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
