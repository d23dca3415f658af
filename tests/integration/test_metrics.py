"""/metrics after the seed: HTTP latency per route, the events of the flow per type and group, order
outcomes, outbox lag, and a dead letter after a poison event."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.bus import Envelope
from app.config import MODULES, Settings
from app.main import create_app
from tests.support.asgi import running
from tests.support.auth import operator, sign_up
from tests.support.poll import until
from tests.support.seed import walk_seed_scenario

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# what the seed publishes, who publishes it and who consumes it (app/*/handlers.py SUBSCRIPTIONS)
SEED_EVENTS = {
    "person.registered.v1": ("person", 1, ["billing"]),
    "billing.account_created.v1": ("billing", 1, []),
    "billing.notification_requested.v1": ("billing", 3, ["notifications"]),
    "orders.payment_requested.v1": ("orders", 2, ["billing"]),
    "billing.payment_succeeded.v1": ("billing", 1, ["orders"]),
    "billing.payment_failed.v1": ("billing", 1, ["orders"]),
}


async def scrape(client: httpx.AsyncClient) -> Samples:
    r = await client.get("/metrics", headers=operator(client.app))  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_the_seed_shows_in_the_metrics(client: httpx.AsyncClient) -> None:
    await walk_seed_scenario(client)

    async def settled() -> Samples | None:
        s = await scrape(client)
        acked = all(
            value(s, "events_consumed_total", type=t, group=g) == n
            for t, (_, n, groups) in SEED_EVENTS.items()
            for g in groups
        )
        # every module's outbox marked sent: the ages below are then 0 (waiting on billing's alone
        # let another module's last mark land after the scrape on a loaded machine: 0.0096 != 0)
        drained = all(value(s, "outbox_pending", module=m) == 0 for m in MODULES)
        return s if acked and drained else None

    s = await until(settled)
    for event_type, (source, n, groups) in SEED_EVENTS.items():
        assert value(s, "events_published_total", type=event_type, source=source) == n, event_type
        for group in groups:
            assert value(s, "event_handler_duration_seconds_count", type=event_type, group=group) == n
    consumed = {dict(labels)["type"] for (name, labels) in s if name == "events_consumed_total"}
    assert "billing.account_created.v1" not in consumed  # nobody consumes it

    def requests(route: str, method: str, status: str = "200") -> float:
        return value(s, "http_request_duration_seconds_count", route=route, method=method, status=status)

    assert requests("/person/register", "POST") == 1
    assert requests("/account/operation", "PUT") == 1
    assert requests("/order/createOrder", "POST") == 2
    assert requests("/account/", "GET") >= 3
    assert requests("/notice/notices/", "GET") >= 3
    assert (
        value(
            s,
            "http_request_duration_seconds_bucket",
            route="/order/createOrder",
            method="POST",
            status="200",
            le="+Inf",
        )
        == 2
    )

    assert value(s, "orders_create_outcomes_total", outcome="paid") == 1
    assert value(s, "orders_create_outcomes_total", outcome="rejected") == 1
    assert value(s, "orders_create_outcomes_total", outcome="pending") == 0
    assert value(s, "orders_reply_timeouts_total") == 0
    for module in MODULES:
        assert (("outbox_pending", frozenset({("module", module)}))) in s
        assert value(s, "outbox_oldest_age_seconds", module=module) == 0
    assert value(s, "events_failed_total", type="orders.payment_requested.v1", group="billing") == 0


async def test_an_unmatched_path_is_one_label_not_one_per_path(client: httpx.AsyncClient) -> None:
    for path in ("/nope/1", "/nope/2"):
        assert (await client.get(path)).status_code == 404
    s = await scrape(client)
    assert value(s, "http_request_duration_seconds_count", route="unmatched", method="GET", status="404") == 2


async def test_a_poison_event_is_counted_failed_redelivered_and_dead_lettered(settings: Settings) -> None:
    app = create_app(settings.with_(bus_max_attempts=3))
    async with running(app) as client:
        system = app.state.system
        assert system.bus is not None
        poison = Envelope(
            type="orders.payment_requested.v1",
            source="orders",
            subject="mallory",
            data={"order_id": "o-poison", "login": "mallory", "amount": -500},
        )
        await system.bus.publish(poison)
        labels = {"type": "orders.payment_requested.v1", "group": "billing"}

        async def dead() -> Samples | None:
            s = await scrape(client)
            return s if value(s, "events_dead_lettered_total", **labels) == 1 else None

        s = await until(dead)
        assert value(s, "events_failed_total", **labels) == 3
        assert value(s, "events_redelivered_total", **labels) == 2
        assert value(s, "events_consumed_total", **labels) == 0


async def test_a_reply_timeout_is_counted_as_pending(settings: Settings) -> None:
    # billing is not running here: the order can only time out
    app = create_app(settings.with_(modules=("person", "orders"), order_reply_timeout=0.05))
    async with running(app) as client:
        login, auth = await sign_up(client, prefix="nobody")
        r = await client.post("/order/createOrder", json={"login": login, "price": 10}, headers=auth)
        assert r.status_code == 202, r.text
        s = await scrape(client)
        assert value(s, "orders_create_outcomes_total", outcome="pending") == 1
        assert value(s, "orders_reply_timeouts_total") == 1
        assert value(s, "outbox_pending", module="orders") == 1
        assert value(s, "outbox_oldest_age_seconds", module="orders") > 0
