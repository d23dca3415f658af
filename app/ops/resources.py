"""What a topology keeps between runs, its PostgreSQL database and its broker namespace: created by
``python -m app up``, dropped by ``python -m app down --wipe`` (``make down WIPE=1``). The namespace is
NATS's streams ``<ns>`` and ``<ns>_DLQ`` with their consumers, or RabbitMQ's exchanges and each
group's queues, named as in app/messaging/brokers/."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from app.config import MODULES

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


def _admin(url: str) -> tuple[URL, str]:
    """The database ``url`` names, and the address of its server's ``postgres`` database (asyncpg's
    scheme) to create or drop it from."""
    from sqlalchemy.engine import make_url

    target = make_url(url)
    return target, target.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist yet."""
    if not url.startswith("postgresql"):
        return
    target, admin = _admin(url)

    async def create() -> None:
        import asyncpg

        try:
            conn = await asyncpg.connect(admin, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ConnectionError(
                f"PostgreSQL at {target.host}:{target.port or 5432} refused: {exc}"
            ) from None
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{target.database}"')
        finally:
            await conn.close()

    asyncio.run(create())


def drop_database(url: str) -> str:
    if not url.startswith("postgresql"):
        return f"kept {url}: not a PostgreSQL database"
    target, admin = _admin(url)

    async def drop() -> str:
        import asyncpg

        try:
            conn = await asyncpg.connect(admin, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            return f"could not drop database {target.database}: {exc}"
        try:
            # FORCE (PostgreSQL 13+): a connection left open elsewhere does not keep it alive
            await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        finally:
            await conn.close()
        return f"dropped database {target.database}"

    return asyncio.run(drop())


def drop_namespace(bus_url: str, namespace: str) -> str:
    if bus_url.startswith(("nats://", "tls://")):
        return asyncio.run(_nats(bus_url, namespace))
    if bus_url.startswith(("amqp://", "amqps://")):
        return asyncio.run(_rabbit(bus_url, namespace))
    return f"nothing to drop on {bus_url}"


async def _nats(url: str, namespace: str) -> str:
    import nats
    from nats.js.errors import NotFoundError

    try:
        nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    except Exception as exc:  # nats-py raises several unrelated types for "cannot connect"
        return f"could not reach {url} to drop namespace {namespace}: {exc}"
    dropped = []
    try:
        js = nc.jetstream()
        for stream in (namespace, f"{namespace}_DLQ"):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
                dropped.append(stream)
    finally:
        await nc.close()
    return f"dropped NATS streams {', '.join(dropped)}" if dropped else f"no NATS stream of {namespace}"


async def _rabbit(url: str, namespace: str) -> str:
    import aio_pika

    try:
        connection = await aio_pika.connect(url, timeout=5)
    except Exception as exc:  # aio-pika raises several unrelated types for "cannot connect"
        return f"could not reach RabbitMQ to drop namespace {namespace}: {exc}"
    async with connection:
        channel = await connection.channel()
        for group in MODULES:
            for queue in (f"{namespace}.{group}", f"{namespace}.{group}.dead"):
                await channel.queue_delete(queue)
        for exchange in (f"{namespace}.events", f"{namespace}.dlx"):
            await channel.exchange_delete(exchange)
    return f"dropped RabbitMQ exchanges and queues {namespace}.*"
