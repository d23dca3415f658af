"""The createOrder wait: the request stays open until the order is settled, or the timeout passes.

In one process the settle's after-commit callback wakes the waiter directly, handing it the settled
order. With several replicas on PostgreSQL the replica that consumed the outcome may not hold the
request: it also sends ``NOTIFY orders_replies, '<order id>'`` after the commit, and every replica
LISTENs, waking its local waiters without a value (they read the row, which is the truth). A lost
notification costs only latency: the waiter times out, reads the row and answers 200 if settled,
else 202.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from app.orders.schemas import OrderOut
from app.storage.notify import PgChannel, libpq_dsn

CHANNEL = "orders_replies"
# what a waiter's future holds when the timeout came first
_TIMED_OUT: Any = object()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


class Replies:
    """This process's open createOrder requests, keyed by order id."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[OrderOut | None]]] = {}
        self._channel: PgChannel | None = None

    async def start(self, database_url: str) -> None:
        """On PostgreSQL, hear the other replicas' settles too (SQLite lives in one process)."""
        if database_url.startswith("postgresql"):
            self._channel = PgChannel(libpq_dsn(database_url), CHANNEL, self._heard)
            await self._channel.start()

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.stop()
            self._channel = None

    def settled(self, order: OrderOut) -> None:
        """An order was settled and committed here: wake its waiters here, tell the other replicas."""
        self._wake(order.id, order)
        if self._channel is not None:
            self._channel.send(order.id)

    async def wait(
        self,
        order_id: str,
        timeout: float,
        read: Callable[[str], Awaitable[OrderOut]],
        *,
        place: Callable[[], Awaitable[str]] | None = None,
    ) -> OrderOut:
        """The order once it is settled, or as it stands after ``timeout`` seconds.

        ``place()`` (when given) stores the order and returns its id: the wait is registered first, so
        a settle that commits before ``place`` returns still wakes it. An id other than ``order_id``
        is an earlier order (an idempotent replay): the wait moves to that one."""
        waiter = self._expect(order_id)
        try:
            if place is not None:
                stored = await place()
                if stored != order_id:
                    self._discard(order_id, waiter)
                    order_id, waiter = stored, self._expect(stored)
                    order = await read(order_id)
                    if order.status != "pending":
                        return order
            # a timer on the future itself: asyncio.wait_for wraps it in machinery of its own, ~1 % of
            # the server's CPU under load (py-spy)
            timer = asyncio.get_running_loop().call_later(timeout, _expire, waiter)
            try:
                settled = await waiter
            finally:
                timer.cancel()
            if settled is not _TIMED_OUT:
                # a wake-up from another replica carries no order: read the row it settled
                return settled if settled is not None else await read(order_id)
        finally:
            self._discard(order_id, waiter)
        # no outcome in time: the order row is the truth (it may have settled a moment ago)
        return await read(order_id)

    def _expect(self, key: str) -> asyncio.Future[OrderOut | None]:
        fut: asyncio.Future[OrderOut | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(fut)
        return fut

    def _discard(self, key: str, fut: asyncio.Future[OrderOut | None]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[key]

    def _wake(self, key: str, value: OrderOut | None) -> None:
        for fut in self._waiters.pop(key, ()):
            if not fut.done():
                fut.set_result(value)

    def _heard(self, order_id: str) -> None:
        self._wake(order_id, None)
