"""Each login's flows are its own: user A never sees user B's flow, in the list, by id or in the live
stream; the operator sees both; a flow no login has named is the operator's only."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from app.config import Settings
from app.main import create_app
from app.observe.flows.recorder import FlowRecorder
from tests.support.asgi import running
from tests.support.auth import operator, sign_up
from tests.support.poll import until


def recorder_of(client: httpx.AsyncClient) -> FlowRecorder:
    observers = client.app.state.system.observers.observers  # type: ignore[attr-defined]
    return next(o for o in observers if isinstance(o, FlowRecorder))


async def order(client: httpx.AsyncClient, login: str, auth: dict[str, str], cid: str) -> None:
    async def account_open() -> bool:
        return (await client.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(account_open)
    body = {"login": login, "operation": "deposit", "sum": 10}
    assert (await client.put("/account/operation", json=body, headers=auth)).status_code == 200
    headers = {**auth, "X-Correlation-ID": cid}
    r = await client.post("/order/createOrder", json={"login": login, "price": 1}, headers=headers)
    assert r.status_code == 200, r.text


async def listed(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> list[dict[str, object]]:
    r = await client.get("/flows", params={"limit": "1000", **params}, headers=headers)
    assert r.status_code == 200, r.text
    flows: list[dict[str, object]] = r.json()["flows"]
    return flows


async def test_a_user_sees_only_their_own_flows_in_the_list_and_by_id(client: httpx.AsyncClient) -> None:
    a, auth_a = await sign_up(client, prefix="ann")
    b, auth_b = await sign_up(client, prefix="bob")
    await order(client, a, auth_a, "iso-a-order")
    await order(client, b, auth_b, "iso-b-order")
    # a request no login names (no token): nobody's flow but the operator's
    await client.get("/account/", params={"login": a}, headers={"X-Correlation-ID": "iso-nobody"})

    mine = await listed(client, auth_a)
    assert mine and {f["login"] for f in mine} == {a}
    assert "iso-a-order" in {f["correlationId"] for f in mine}
    assert {f["login"] for f in await listed(client, auth_b)} == {b}

    for cid in ("iso-b-order", "iso-nobody"):
        for fmt in ("json", "mermaid", "sequencediagram"):
            r = await client.get(f"/flows/{cid}", params={"format": fmt}, headers=auth_a)
            assert r.status_code == 404, (cid, fmt, r.text)
            assert b not in r.text
    own = await client.get("/flows/iso-a-order", headers=auth_a)
    assert own.status_code == 200 and own.json()["login"] == a

    # naming another login is refused, as everywhere else; the operator may pick any
    assert (await client.get("/flows", params={"login": b}, headers=auth_a)).status_code == 403
    admin = operator(client.app)  # type: ignore[attr-defined]
    everyone = {f["correlationId"] for f in await listed(client, admin)}
    assert {"iso-a-order", "iso-b-order", "iso-nobody"} <= everyone
    assert {f["login"] for f in await listed(client, admin, login=b)} == {b}
    assert (await client.get("/flows/iso-b-order", headers=admin)).json()["login"] == b


async def test_a_users_stream_carries_only_their_own_hops(client: httpx.AsyncClient) -> None:
    a, auth_a = await sign_up(client, prefix="ann")
    b, auth_b = await sign_up(client, prefix="bob")
    recorder = recorder_of(client)

    async def registrations_settled() -> bool:
        # each sign-up's events (account opened, its notice stored) finished before the streams open,
        # or a late hop of theirs is the first the operator's stream reads
        outbox = (await client.get("/admin/outbox", headers=operator(client.app))).json()["modules"]  # type: ignore[attr-defined]
        return all(m["pending"] == 0 for m in outbox.values())

    await until(registrations_settled)
    admin = operator(client.app)  # type: ignore[attr-defined]

    async def read(headers: dict[str, str], limit: int) -> list[dict[str, object]]:
        records = []
        params = {"limit": str(limit)}  # the ASGI transport hands the body over once the stream ends
        async with client.stream("GET", "/flows/stream", params=params, headers=headers) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    records.append(orjson.loads(line.partition(":")[2]))
        return records

    # A's own request ends A's stream (its request and reply); the operator's stream sees B's first
    ann = asyncio.create_task(read(auth_a, 2))
    everyone = asyncio.create_task(read(admin, 2))
    await until(lambda: len(recorder.subscribers) == 2)
    bob = {**auth_b, "X-Correlation-ID": "iso-stream-b"}
    assert (await client.get("/notice/notices/", params={"login": b}, headers=bob)).status_code == 200
    assert not ann.done()
    ann_headers = {**auth_a, "X-Correlation-ID": "iso-stream-a"}
    assert (await client.get("/notice/notices/", params={"login": a}, headers=ann_headers)).status_code == 200
    async with asyncio.timeout(5):
        seen_by_a, seen_by_operator = await ann, await everyone
    assert {r["correlationId"] for r in seen_by_a} == {"iso-stream-a"}
    assert [r["kind"] for r in seen_by_a] == ["request", "reply"]
    assert {r["correlationId"] for r in seen_by_operator} == {"iso-stream-b"}


async def test_the_stream_ends_when_the_users_token_expires(settings: Settings) -> None:
    async with running(create_app(settings.with_(token_ttl_seconds=1))) as client:
        _, auth = await sign_up(client)
        async with asyncio.timeout(5):  # FLOWS_STREAM_SECONDS is 300: the token's second ends it
            r = await client.get("/flows/stream", headers=auth)
        assert r.status_code == 200
        again = await client.get("/flows/stream", headers=auth)
        assert again.status_code == 401 and "expired" in again.json()["detail"]


async def test_a_correlation_id_another_login_made_holds_none_of_your_hops(client: httpx.AsyncClient) -> None:
    # the correlation id is the client's to choose: B sending A's makes B a flow of B's own
    a, auth_a = await sign_up(client, prefix="ann")
    b, auth_b = await sign_up(client, prefix="bob")
    recorder = recorder_of(client)
    theirs = recorder.subscribe(login=a)
    shared = {"X-Correlation-ID": "iso-shared"}
    assert (
        await client.get("/notice/notices/", params={"login": a}, headers={**auth_a, **shared})
    ).status_code == 200
    assert (
        await client.get("/notice/notices/", params={"login": b}, headers={**auth_b, **shared})
    ).status_code == 200

    flow_a = (await client.get("/flows/iso-shared", headers=auth_a)).json()
    flow_b = (await client.get("/flows/iso-shared", headers=auth_b)).json()
    assert (flow_a["login"], flow_a["hops"]) == (a, 2) and b not in str(flow_a)
    assert (flow_b["login"], flow_b["hops"]) == (b, 2) and a not in str(flow_b)
    mine = [f for f in await listed(client, auth_a) if f["correlationId"] == "iso-shared"]
    assert [f["login"] for f in mine] == [a]
    # A's live stream had A's request and reply, nothing of B's
    hops = [theirs.queue.get_nowait() for _ in range(theirs.queue.qsize())]
    assert [h.kind for h in hops if h.correlation_id == "iso-shared"] == ["request", "reply"]
    recorder.unsubscribe(theirs)
    # the operator sees both, under the one id
    admin = operator(client.app)  # type: ignore[attr-defined]
    both = [str(f["login"]) for f in await listed(client, admin) if f["correlationId"] == "iso-shared"]
    assert sorted(both) == sorted([a, b])
