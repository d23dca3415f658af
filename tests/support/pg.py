"""A fresh PostgreSQL database per test on the local server, dropped afterwards; skip when it is down."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

PG = "postgres@127.0.0.1:5432"
START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def fresh_database() -> AsyncIterator[str]:
    """Yield a SQLAlchemy URL of a new, empty database."""
    if not reachable():
        pytest.skip(f"PostgreSQL is not running on 127.0.0.1:5432; start it with: {START}")
    import asyncpg

    name = f"ec_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"postgresql://{PG}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{PG}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
