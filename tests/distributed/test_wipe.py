"""`python -m app down --wipe` (`make down WIPE=1`) drops the topology's own database and broker
namespace, and keeps ones it was given. Skipped, with the command to run, without PostgreSQL or NATS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.ops.resources import ensure_database
from app.ops.topology import STATE, Topology, down
from tests.distributed.conftest import NATS_START, _open
from tests.support.pg import PG, reachable
from tests.support.pg import START as PG_START


async def database_exists(name: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{PG}/postgres")
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def streams(prefix: str) -> set[str]:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        names = await nc.jetstream().streams_info()
        return {s.config.name for s in names if s.config.name and s.config.name.startswith(prefix)}
    finally:
        await nc.close()


def test_wipe_drops_the_own_database_and_streams_and_keeps_given_ones(tmp_path: Path) -> None:
    if not reachable():
        pytest.skip(f"PostgreSQL is not running on 127.0.0.1:5432; start it with: {PG_START}")
    if not _open(4222):
        pytest.skip(f"nats-server is not running on 127.0.0.1:4222; start it with: {NATS_START}")
    pytest.importorskip("app.messaging.brokers.nats", reason="the NATS adapter is not installed")
    from app.messaging.brokers.nats import NatsBus

    t = Topology(run_dir=tmp_path / "checkout" / ".run", database_url="")
    t.run_dir.mkdir(parents=True)
    ensure_database(t.database_url)

    async def make_streams() -> None:
        bus = NatsBus(t.bus_url, namespace=t.namespace)
        await bus.connect()
        await bus.close()

    asyncio.run(make_streams())
    t.save()
    db = t.database_url.rsplit("/", 1)[1]
    assert asyncio.run(database_exists(db)) and asyncio.run(streams(t.namespace)) == {
        t.namespace,
        f"{t.namespace}_DLQ",
    }
    said = down(t.run_dir, wipe=True)
    assert f"dropped database {db}" in said and "dropped NATS streams" in said
    assert not asyncio.run(database_exists(db)) and asyncio.run(streams(t.namespace)) == set()

    # a database and a namespace given by DATABASE_URL / BUS_NAMESPACE are not the topology's to drop
    state = json.loads((t.run_dir / STATE).read_text())
    state.update(owns_database=False, owns_namespace=False)
    (t.run_dir / STATE).write_text(json.dumps(state))
    said = down(t.run_dir, wipe=True)
    assert "kept postgresql" in said and f"kept namespace {t.namespace}" in said
