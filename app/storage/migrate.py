"""Schema migrations with Alembic, per module, safe when several replicas start at once.

``python -m app migrate`` runs them; the server runs them at start-up too. Two processes migrating the
same database at once would race, so each run holds a lock first: a PostgreSQL advisory lock per
module, or an exclusive file lock beside the SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

HERE = Path(__file__).parent / "migrations"


def alembic_config(module: str, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(HERE / "versions" / module))
    cfg.attributes["module"] = module
    cfg.attributes["connection"] = connection
    return cfg


def sync_url(url: str) -> str:
    """SQLite migrates on the stdlib driver; PostgreSQL (asyncpg) through ``run_sync`` in :func:`migrate`."""
    return url.replace("sqlite+aiosqlite://", "sqlite://")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def upgrade_connection(connection: Connection, module: str) -> None:
    """Bring ``module``'s tables to the newest revision on ``connection`` (under the caller's lock)."""
    command.upgrade(alembic_config(module, connection), "head")


def upgrade_sqlite(url: str, module: str) -> None:
    path = Path(url.split("///", 1)[1])
    with _file_lock(path.with_name(path.name + ".migrate.lock")):
        engine = create_engine(sync_url(url), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                upgrade_connection(conn, module)
        finally:
            engine.dispose()


def advisory_key(module: str) -> int:
    return zlib.crc32(f"eventcollab-migrate-{module}".encode())


def upgrade_postgres_locked(connection: Connection, module: str) -> None:
    # a transaction-level advisory lock: released by the COMMIT that publishes the new schema
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(module)})
    upgrade_connection(connection, module)


async def migrate(url: str, module: str) -> None:
    """Upgrade ``module``'s schema at ``url`` to the newest revision, holding the module's lock."""
    if url.startswith("sqlite"):
        await asyncio.to_thread(upgrade_sqlite, url, module)
        return
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_postgres_locked, module)
    finally:
        await engine.dispose()
