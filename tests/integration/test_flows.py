"""The flow recorder over the whole system (ASGI): the seed's arrows, both drawings, redelivery,
retention and the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from itertools import count

import httpx
import orjson
from fastapi import FastAPI

from app.bus import Envelope
from app.config import Settings
from app.main import create_app
from app.observe.flows.recorder import SUBSCRIBER_QUEUE, FlowRecorder
from app.observe.observers import HttpExchange
from tests.support.asgi import running
from tests.support.auth import PASSWORD, operator
from tests.support.poll import until
from tests.support.seed import walk_seed_scenario

SEED_ORDER_PAID = [
    "Client->Order-service: POST /order/createOrder",
    "Order-service->Brocker-service: orders.payment_requested.v1",
    "Brocker-service->Billing-service: orders.payment_requested.v1",
    "Billing-service->Brocker-service: billing.payment_succeeded.v1",
    "Billing-service->Brocker-service: billing.notification_requested.v1",
    "Brocker-service->Order-service: billing.payment_succeeded.v1",
    "Brocker-service->Notification-service: billing.notification_requested.v1",
    "Order-service-->Client: 200",
]
PARTICIPANT_LINES = [
    f"participant {p}"
    for p in (
        "Client",
        "Person-service",
        "Brocker-service",
        "Billing-service",
        "Order-service",
        "Notification-service",
    )
]


def recorder_of(app: FastAPI) -> FlowRecorder:
    return next(o for o in app.state.system.observers.observers if isinstance(o, FlowRecorder))


def tag_requests(client: httpx.AsyncClient, prefix: str) -> list[tuple[str, str, str]]:
    """Give every request of ``client`` our own correlation id; returns (method, path, id) as sent."""
    sent: list[tuple[str, str, str]] = []
    numbers = count(1)

    async def tag(request: httpx.Request) -> None:
        cid = f"{prefix}-{next(numbers)}"
        request.headers["X-Correlation-ID"] = cid
        sent.append((request.method, request.url.path, cid))

    client.event_hooks["request"].append(tag)
    return sent


@contextlib.asynccontextmanager
async def system_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings)) as c:
        yield c


async def test_order_flow_has_the_seed_arrows_in_the_seed_order(client: httpx.AsyncClient) -> None:
    sent = tag_requests(client, "seed-order")
    login = await walk_seed_scenario(client)
    paid_order = next(cid for method, path, cid in sent if path == "/order/createOrder")
    admin = operator(client.app)  # type: ignore[attr-defined]

    params = {"format": "sequencediagram"}
    text = (await client.get(f"/flows/{paid_order}", params=params, headers=admin)).text
    lines = text.splitlines()
    assert lines[:6] == PARTICIPANT_LINES
    # the messages, in order (without the activation bars and each service's self-arrows)
    messages = [line for line in lines[6:] if "->" in line and not re.match(r"^([\w-]+)->\1:", line)]
    assert messages == SEED_ORDER_PAID
    assert "Billing-service->Billing-service: withdraw 300.00, balance 700.00" in lines
    assert lines.count("activate Billing-service") == lines.count("deactivate Billing-service") == 1

    flow = (await client.get(f"/flows/{paid_order}", headers=admin)).json()
    assert (flow["login"], flow["kind"], flow["outcome"]) == (login, "order", "ok")
    assert {r["correlationId"] for r in flow["records"]} == {paid_order}
    published = [r for r in flow["records"] if r["kind"] == "published"]
    # billing's events were caused by the payment request Order published
    assert published[1]["causationId"] == published[0]["eventId"]
    mine = {"login": login, "limit": "1000"}
    listed = (await client.get("/flows", params=mine, headers=admin)).json()["flows"]
    assert [f["kind"] for f in listed if f["kind"] in ("order", "register")] == ["order", "order", "register"]
    # a login request's flow is the login's it authenticated; every later request's, its token's
    assert {f["kind"] for f in listed} == {"register", "login", "balance", "notices", "operation", "order"}


async def test_a_flow_renders_as_mermaid_and_as_the_seeds_syntax(client: httpx.AsyncClient) -> None:
    sent = tag_requests(client, "render")
    await walk_seed_scenario(client)
    register = next(cid for method, path, cid in sent if path == "/person/register")
    admin = operator(client.app)  # type: ignore[attr-defined]

    mermaid = await client.get(f"/flows/{register}", params={"format": "mermaid"}, headers=admin)
    assert mermaid.status_code == 200
    assert mermaid.text.startswith("sequenceDiagram\n    participant Client\n")
    assert "    participant Brocker as Brocker-service\n" in mermaid.text
    assert "    Client->>Person: POST /person/register\n" in mermaid.text
    assert "    Person->>Brocker: person.registered.v1\n" in mermaid.text
    assert "    Brocker->>Billing: person.registered.v1\n" in mermaid.text
    assert "    Person-->>Client: 200\n" in mermaid.text

    seq = await client.get(f"/flows/{register}", params={"format": "sequencediagram"}, headers=admin)
    assert "Billing-service->Brocker-service: billing.account_created.v1" in seq.text
    assert "Brocker-service->Notification-service: billing.notification_requested.v1" in seq.text

    missing = await client.get("/flows/no-such-flow", headers=admin)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    svg = await client.get(f"/flows/{register}", params={"format": "svg"}, headers=admin)
    assert svg.status_code == 400


async def test_no_flow_shows_a_password_or_a_token(client: httpx.AsyncClient) -> None:
    sent = tag_requests(client, "secret")
    tokens: set[str] = set()

    async def keep_token(request: httpx.Request) -> None:
        token = request.headers.get("authorization", "").partition(" ")[2]
        if token:
            tokens.add(token)

    client.event_hooks["request"].append(keep_token)
    await walk_seed_scenario(client)

    admin = operator(client.app)  # type: ignore[attr-defined]
    flows = (await client.get("/flows", params={"limit": 100}, headers=admin)).json()["flows"]
    recorded = {f["correlationId"] for f in flows}
    logins = {cid for _, path, cid in sent if path == "/person/login"}
    assert tokens and logins and logins <= recorded
    for cid in recorded:
        for params in ({}, {"format": "mermaid"}, {"format": "sequencediagram"}):
            text = (await client.get(f"/flows/{cid}", params=params, headers=admin)).text
            assert PASSWORD not in text and not any(token in text for token in tokens), text


async def test_a_redelivered_event_shows_up_in_its_flow(settings: Settings) -> None:
    chaotic = settings.with_(bus_chaos="seed=1,fail=0.5", bus_max_attempts=20)
    async with system_client(chaotic) as client:
        await walk_seed_scenario(client)
        admin = operator(client.app)  # type: ignore[attr-defined]
        assert (await client.get("/flows/chaos", headers=admin)).json()["enabled"] is True
        flows = (await client.get("/flows", params={"limit": 100}, headers=admin)).json()["flows"]
        retried = [f for f in flows if f["redeliveries"]]
        assert retried, flows
        flow = (await client.get(f"/flows/{retried[0]['correlationId']}", headers=admin)).json()
        again = next(r for r in flow["records"] if r["kind"] == "redelivered")
        assert again["attempt"] > 1
        failed = [r for r in flow["records"] if r["kind"] == "failed" and r["eventId"] == again["eventId"]]
        assert failed and "ChaosFault" in failed[0]["error"]
        params = {"format": "mermaid"}
        drawn = (await client.get(f"/flows/{retried[0]['correlationId']}", params=params, headers=admin)).text
        assert "(redelivery, attempt" in drawn and "--xBrocker: nack" in drawn


async def test_health_admin_and_the_viewer_itself_are_not_recorded(client: httpx.AsyncClient) -> None:
    sent = tag_requests(client, "quiet")
    admin = operator(client.app)  # type: ignore[attr-defined]
    for path in ("/health/live", "/flows", "/flows/chaos", "/admin/outbox", "/metrics", "/", "/web/app.js"):
        assert (await client.get(path, headers=admin)).status_code == 200, path
    recorder = recorder_of(client.app)  # type: ignore[attr-defined]
    assert not [cid for _, _, cid in sent if recorder.get(cid)]


def exchange(cid: str, at: float) -> HttpExchange:
    return HttpExchange("GET", "/account/", 200, cid, at, 0.001, "/account/")


def test_retention_keeps_the_newest_flows_and_caps_hops() -> None:
    recorder = FlowRecorder(max_flows=3, max_hops=4)
    for i in range(5):
        recorder.on_http(exchange(f"f{i}", 1000.0 + i))
    assert list(recorder.flows) == ["f2", "f3", "f4"]
    assert [f.correlation_id for f in recorder.recent(10)] == ["f4", "f3", "f2"]

    for _ in range(3):
        recorder.on_published(Envelope("t.happened.v1", "billing", {}, subject="ann", correlationid="f4"))
    flow = recorder.get("f4")
    assert flow is not None
    assert (len(flow.hops), flow.dropped, flow.login) == (4, 1, "ann")


async def test_a_slow_subscriber_is_dropped_without_blocking_the_recorder() -> None:
    recorder = FlowRecorder()
    slow, picky = recorder.subscribe(), recorder.subscribe("other")
    for i in range(SUBSCRIBER_QUEUE + 10):
        recorder.on_http(exchange(f"f{i}", 1000.0 + i))
    assert slow.dropped and slow not in recorder.subscribers
    assert not picky.dropped and picky.queue.empty()
    drained = 0
    while await slow.next() is not None:
        drained += 1
    assert drained == SUBSCRIBER_QUEUE


async def test_the_stream_pushes_each_record_as_it_happens(client: httpx.AsyncClient) -> None:
    recorder = recorder_of(client.app)  # type: ignore[attr-defined]
    cid = "stream-register-1"

    async def read() -> list[dict[str, object]]:
        records = []
        # the ASGI transport hands the body over once the stream ends: ``limit`` ends it
        params = {"correlationId": cid, "limit": "4"}
        admin = operator(client.app)  # type: ignore[attr-defined]
        async with client.stream("GET", "/flows/stream", params=params, headers=admin) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "record":
                    records.append(orjson.loads(line.partition(":")[2]))
        return records

    reader = asyncio.create_task(read())
    await until(lambda: recorder.subscribers or reader.done())
    r = await client.post(
        "/person/register",
        json={"login": "streamer1", "email": "s@example.com", "password": PASSWORD},
        headers={"X-Correlation-ID": cid},
    )
    assert r.status_code == 200
    async with asyncio.timeout(5):
        records = await reader
    assert len(records) == 4
    assert {rec["correlationId"] for rec in records} == {cid}
    assert "published" in {rec["kind"] for rec in records}
    await until(lambda: not recorder.subscribers)
