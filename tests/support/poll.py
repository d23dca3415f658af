"""Polling with a deadline: the only way tests wait."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 5.0, interval: float = 0.01
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy; return that. Fail after
    ``timeout`` seconds with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)
