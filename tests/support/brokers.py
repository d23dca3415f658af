"""Delete what a bus namespace left on a shared broker: tests that run other processes against a
broker (tests/distributed/) cannot rely on a bus of their own closing with ``delete_on_close``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from app.messaging.brokers.rabbitmq import RabbitBus


async def delete_namespace(bus_url: str, namespace: str, groups: Iterable[str]) -> list[str]:
    """Delete ``namespace``'s streams (NATS) or exchanges and the ``groups``' queues (RabbitMQ), named
    as the adapters name them; return the names it asked the broker to delete."""
    if bus_url.startswith(("nats://", "tls://")):
        import nats
        from nats.js.errors import NotFoundError

        from app.messaging.brokers.nats import NatsBus

        bus = NatsBus(bus_url, namespace=namespace)
        names = [bus.stream, bus.dlq_stream]
        nc = await nats.connect(bus_url)
        try:
            for stream in names:
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()
        return names
    import aio_pika

    rabbit = RabbitBus(bus_url, namespace=namespace)
    queues = [name for g in sorted(groups) for name in (rabbit.queue_name(g), rabbit.dead_queue_name(g))]
    exchanges = [rabbit.exchange_name, rabbit.dlx_name]
    connection = await aio_pika.connect(bus_url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)  # idempotent on RabbitMQ >= 3.7: a missing one is fine
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
    return queues + exchanges


async def remaining(bus_url: str, namespace: str, groups: Iterable[str]) -> list[str]:
    """What of ``namespace`` is still on the broker (looked up one name at a time, passively)."""
    if bus_url.startswith(("nats://", "tls://")):
        import nats
        from nats.js.errors import NotFoundError

        from app.messaging.brokers.nats import NatsBus

        bus = NatsBus(bus_url, namespace=namespace)
        found = []
        nc = await nats.connect(bus_url)
        try:
            for stream in (bus.stream, bus.dlq_stream):
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().stream_info(stream)
                    found.append(stream)
        finally:
            await nc.close()
        return found
    import aio_pika
    from aio_pika.exceptions import ChannelClosed

    rabbit = RabbitBus(bus_url, namespace=namespace)
    found = []
    connection = await aio_pika.connect(bus_url)
    try:
        for group in sorted(groups):
            for queue in (rabbit.queue_name(group), rabbit.dead_queue_name(group)):
                with contextlib.suppress(ChannelClosed):  # 404: a passive declare closes its channel
                    await (await connection.channel()).declare_queue(queue, passive=True)
                    found.append(queue)
        for exchange in (rabbit.exchange_name, rabbit.dlx_name):
            with contextlib.suppress(ChannelClosed):
                await (await connection.channel()).declare_exchange(exchange, passive=True)
                found.append(exchange)
    finally:
        await connection.close()
    return found
