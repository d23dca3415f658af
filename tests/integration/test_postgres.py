"""The same modules on PostgreSQL: the seed, several Order replicas answering each other's requests,
and outbox claims that two replicas never publish twice."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app import orders
from app.bus import Envelope, Handler, MemoryBus, utcnow
from app.config import Settings
from app.main import create_app
from app.messaging.outbox import Relay
from app.storage.database import Database
from app.storage.migrate import migrate
from app.storage.sql import Sql
from tests.support.auth import operator, sign_up
from tests.support.pg import fresh_database
from tests.support.poll import until
from tests.support.seed import walk_seed_scenario
from tests.support.settings import FAST_HASH


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async for url in fresh_database():
        yield url


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30)  # type: ignore[arg-type]


async def test_seed_scenario_on_postgresql(pg_url: str) -> None:
    app = create_app(Settings(database_url=pg_url, auth_secret=secrets.token_urlsafe(32), **FAST_HASH))
    async with app.router.lifespan_context(app), client_for(app) as client:
        await walk_seed_scenario(client)
        report = (await client.get("/admin/invariants", headers=operator(app))).json()
        assert report["ok"], report


async def test_an_order_replica_answers_when_another_replica_consumed_the_outcome(pg_url: str) -> None:
    bus = MemoryBus()
    # one secret for the three apps, as for replicas: a token from core's login is good at replica A
    settings = Settings(
        database_url=pg_url, order_reply_timeout=30.0, auth_secret=secrets.token_urlsafe(32), **FAST_HASH
    )
    core = create_app(settings.with_(modules=("person", "billing", "notifications")), bus=bus)
    replica_a = create_app(settings.with_(modules=("orders",)), bus=bus)
    replica_b = create_app(settings.with_(modules=("orders",)), bus=bus)
    async with (
        core.router.lifespan_context(core),
        replica_a.router.lifespan_context(replica_a),
        replica_b.router.lifespan_context(replica_b),
        client_for(core) as c,
        client_for(replica_a) as a,
    ):
        login, auth = await sign_up(c, prefix="replica")

        async def opened() -> bool:
            return (await c.get("/account/", params={"login": login}, headers=auth)).status_code == 200

        await until(opened)
        r = await c.put(
            "/account/operation", json={"login": login, "operation": "deposit", "sum": 100}, headers=auth
        )
        assert r.status_code == 200, r.text
        started = time.monotonic()
        replies = await asyncio.gather(
            *(
                a.post("/order/createOrder", json={"login": login, "price": 10}, headers=auth)
                for _ in range(12)
            )
        )
        elapsed = time.monotonic() - started
        # members of the "orders" group compete, so B consumed about half the outcomes; A still
        # answered every request with the final status long before its 30 s reply timeout
        assert [r.status_code for r in replies] == [200] * 12
        assert sorted(r.json()["status"] for r in replies) == ["paid"] * 10 + ["rejected"] * 2
        assert elapsed < 10, f"replies waited for the timeout ({elapsed:.1f} s): no cross-replica wake-up"


class Published:
    """A durable bus that records what it was handed (the sweep's outcome), for the claim test."""

    durable = True

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def publish(self, event: Envelope) -> None:
        await asyncio.sleep(0)  # let the other sweeper run while this one holds its claims
        self.ids.append(event.id)

    async def subscribe(self, event_type: str, group: str, handler: Handler) -> None:
        raise NotImplementedError

    async def connect(self) -> None:
        pass

    ready = True

    def expect_groups(self, expected: Mapping[str, Iterable[str]]) -> None:
        pass

    def on_settled(self, source: str, listener: Callable[[Envelope], None]) -> None:
        raise NotImplementedError("a durable bus never settles")

    def waiting(self, group: str) -> int:
        return 0

    async def close(self) -> None:
        pass


async def test_two_relays_sweeping_one_outbox_publish_each_row_once(pg_url: str) -> None:
    await migrate(pg_url, "orders")
    db = Database("orders", pg_url, orders.metadata, outbox=orders.messaging.outbox)
    await db.start(create_tables=False)
    try:
        table = orders.messaging.outbox
        old = utcnow() - timedelta(minutes=1)
        events = [
            Envelope(type="orders.payment_requested.v1", source="orders", data={"n": i}) for i in range(300)
        ]
        insert = Sql.insert(table, "id", "type", "subject", "envelope", "created_at")
        rows = [
            {"id": e.id, "type": e.type, "subject": "", "envelope": e.to_json(), "created_at": old}
            for e in events
        ]
        await db.transact(lambda uow: uow.many(insert, rows))
        one, two = Published(), Published()
        r1, r2 = Relay(db, one), Relay(db, two)
        while sum(await asyncio.gather(r1.sweep(limit=40), r2.sweep(limit=40))):
            pass
        published = one.ids + two.ids
        assert sorted(published) == sorted(e.id for e in events)
        assert one.ids and two.ids, "both sweepers should have claimed some rows"
        unsent = await db.query(
            lambda conn: conn.execute(select(func.count()).where(table.c.sent_at.is_(None))).scalar_one()
        )
        assert unsent == 0
    finally:
        await db.stop()
