"""The distributed topology per broker: module processes (two replicas of Order and Billing), the
broker, a fresh PostgreSQL database, the console and nginx in front. Skipped, with the command to run,
when the broker, PostgreSQL or nginx is not there."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from app.ops import nginx
from app.ops.topology import Topology
from app.system import consumers
from tests.support.brokers import delete_namespace, remaining
from tests.support.pg import PG, reachable
from tests.support.pg import START as PG_START
from tests.support.settings import FAST_HASH_ENV

NATS_START = (
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
    "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
)
BROKERS = {
    "nats": ("nats://127.0.0.1:4222", 4222, NATS_START),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672/", 5672, "rabbitmq-server -detached"),
}


def consumers_groups() -> set[str]:
    return {group for groups in consumers().values() for group in groups}


def _open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module", params=sorted(BROKERS))
def topology(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    broker = request.param
    url, port, start = BROKERS[broker]
    if broker == "nats":
        pytest.importorskip("app.messaging.brokers.nats", reason="the NATS adapter is not installed")
    if not _open(port):
        pytest.skip(f"{broker} is not running on 127.0.0.1:{port}; start it with: {start}")
    if not reachable():
        pytest.skip(f"PostgreSQL is not running on 127.0.0.1:5432; start it with: {PG_START}")
    if nginx.binary() is None:
        pytest.skip(f"nginx is not installed: {nginx.INSTALL}")
    import asyncpg

    db = f"ec_{uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"postgresql://{PG}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{db}"'))
    run_dir: Path = tmp_path_factory.mktemp(f"topology-{broker}")
    t = Topology(
        bus_url=url,
        database_url=f"postgresql+asyncpg://{PG}/{db}",
        namespace=f"t{uuid4().hex[:10]}",
        # a base port of its own: nginx on it, the processes on the ports after it; below Linux's
        # ephemeral range (32768-60999), where outgoing connections would take ports from under it
        port=random.randrange(110, 320) * 100,
        run_dir=run_dir,
        extra_env={"BUS_ACK_WAIT": "3", **FAST_HASH_ENV},
    )
    t.broker = broker
    try:
        t.start()
        t.wait_ready(timeout=60)
        yield t
    finally:
        t.stop()
        # the module processes declared streams / queues on the shared broker: none outlives the run
        asyncio.run(delete_namespace(url, t.namespace, consumers_groups()))
        left = asyncio.run(remaining(url, t.namespace, consumers_groups()))
        assert not left, f"still on {broker} after the run: {left}"
        logs = sorted(run_dir.glob("*.log"))
        if request.node.session.testsfailed and shutil.which("tail"):
            for log in logs:
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}")
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
