"""The one-process guarantees, again with every module its own process over a real broker and
PostgreSQL behind nginx: the seed, concurrency, idempotency, kill -9 of a Billing replica, a broker
restart; and what the front serves besides the modules."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from uuid import uuid4

import httpx
import orjson
import pytest

from app.ops.topology import Topology, status
from tests.distributed.conftest import NATS_START
from tests.support.auth import sign_up
from tests.support.poll import until
from tests.support.seed import walk_seed_scenario

Auth = dict[str, str]

pytestmark = pytest.mark.slow


def client(t: Topology) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=t.base_url, timeout=30, trust_env=False)


async def funded(c: httpx.AsyncClient, amount: int) -> tuple[str, Auth]:
    """A user signed up through the front (person signs the token; billing and orders, other
    processes, accept it because the topology gives them one AUTH_SECRET), its account funded."""
    login, auth = await sign_up(c, prefix="dist")

    async def opened() -> bool:
        return (await c.get("/account/", params={"login": login}, headers=auth)).status_code == 200

    await until(opened, timeout=20)
    r = await c.put(
        "/account/operation", json={"login": login, "operation": "deposit", "sum": amount}, headers=auth
    )
    assert r.status_code == 200, r.text
    return login, auth


async def balance(c: httpx.AsyncClient, login: str, auth: Auth) -> object:
    r = await c.get("/account/", params={"login": login}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["balance"]


async def settled(
    c: httpx.AsyncClient, login: str, auth: Auth, n: int, timeout: float = 60
) -> list[dict[str, object]]:
    async def done() -> list[dict[str, object]] | None:
        orders: list[dict[str, object]] = (
            await c.get("/order/orders", params={"login": login, "limit": 1000}, headers=auth)
        ).json()["orders"]
        return orders if len(orders) == n and all(o["status"] != "pending" for o in orders) else None

    found: list[dict[str, object]] = await until(done, timeout=timeout, interval=0.2)
    return found


async def test_seed_scenario_through_the_front(topology: Topology) -> None:
    async with client(topology) as c:
        await walk_seed_scenario(c)


async def test_the_front_is_nginx_and_serves_the_docs_and_the_operator_endpoints(topology: Topology) -> None:
    async with client(topology) as c:
        ready = await c.get("/health/ready")
        assert ready.status_code == 200 and ready.headers["server"] == "nginx"
        # the console runs every module: one OpenAPI document with all their paths, the invariants
        # over every database
        paths = (await c.get("/openapi.json")).json()["paths"]
        assert {"/person/register", "/account/operation", "/order/createOrder"} <= set(paths)
        for path in ("/", "/docs", "/asyncapi.yaml"):
            assert (await c.get(path)).status_code == 200, path
        # the operator endpoints at the front: closed to strangers, open to the topology's one token
        operator = {"Authorization": f"Bearer {topology.operator_token}"}
        for path in ("/metrics", "/admin/outbox"):
            assert (await c.get(path)).status_code == 401, path
            assert (await c.get(path, headers=operator)).status_code == 200, path
        report = (await c.get("/admin/invariants", headers=operator)).json()
        names = {i["name"] for i in report["invariants"]}
        assert {"money conservation", "one charge per paid order", "no negative balance"} <= names
    lines = status(topology.run_dir).splitlines()
    assert sum(" running " in ln and ln.rstrip().endswith("ready") for ln in lines) == len(topology.records)


PAY, PAID, NOTIFY = (
    "orders.payment_requested.v1",
    "billing.payment_succeeded.v1",
    "billing.notification_requested.v1",
)
ORDER = "POST /order/createOrder"
# (kind, module, label) of an order's hops: orders' HTTP exchange and events, billing's, notifications'
ORDER_HOPS = [
    ("request", "orders", ORDER),
    ("published", "orders", PAY),
    ("delivered", "billing", PAY),
    ("acked", "billing", PAY),
    ("published", "billing", PAID),
    ("delivered", "orders", PAID),
    ("acked", "orders", PAID),
    ("reply", "orders", ORDER),
    ("published", "billing", NOTIFY),
    ("delivered", "notifications", NOTIFY),
    ("acked", "notifications", NOTIFY),
]
# and each module's own change, said as it commits: orders saves and marks, billing withdraws,
# notifications stores
ORDER_NOTES = 4


async def whole_flow(c: httpx.AsyncClient, t: Topology, cid: str) -> list[tuple[str, str, str]]:
    """The (kind, module, label) of flow ``cid``'s hops at the front, once it holds all of ORDER_HOPS."""
    operator = {"Authorization": f"Bearer {t.operator_token}"}

    async def whole() -> list[tuple[str, str, str]] | None:
        got = await c.get(f"/flows/{cid}", headers=operator)
        hops = (
            [(h["kind"], h["module"], h["label"]) for h in got.json()["records"]]
            if got.status_code == 200
            else []
        )
        return hops if set(ORDER_HOPS) <= set(hops) else None

    found: list[tuple[str, str, str]] = await until(whole, timeout=20, interval=0.1)
    return found


async def test_the_front_shows_one_order_as_one_flow_with_the_hops_of_every_process(
    topology: Topology,
) -> None:
    if topology.broker != "nats":
        pytest.skip(
            "the flow feed (FLOWS_FEED) rides NATS: over RabbitMQ the front's /flows is the console's"
        )
    operator = {"Authorization": f"Bearer {topology.operator_token}"}
    cid = f"whole-{uuid4().hex[:12]}"
    async with client(topology) as c:
        login, auth = await funded(c, 500)
        live: dict[str, str | int] = {"correlationId": cid, "limit": len(ORDER_HOPS) + ORDER_NOTES}
        async with c.stream("GET", "/flows/stream", params=live, headers=operator) as stream:
            assert stream.status_code == 200  # subscribed at the console before the order starts
            r = await c.post(
                "/order/createOrder",
                json={"login": login, "price": 100},
                headers={**auth, "X-Correlation-ID": cid},
            )
            assert r.status_code == 200 and r.json()["status"] == "paid", r.text
            async with asyncio.timeout(20):
                streamed = [
                    orjson.loads(line[5:])
                    for line in [ln async for ln in stream.aiter_lines()]
                    if line.startswith("data:")
                ]

        hops = await whole_flow(c, topology, cid)
        flows = (await c.get("/flows", params={"login": login}, headers=operator)).json()["flows"]
    # sorted by when each hop happened in its own process (this machine's one clock): each step after
    # the one that caused it. Not "published" before "delivered": a publish is reported at its broker
    # ack, which may come after the consumer has the event
    at = {hop: hops.index(hop) for hop in ORDER_HOPS}
    caused = [
        ("request", "orders", ORDER),
        ("delivered", "billing", PAY),
        ("delivered", "orders", PAID),
        ("reply", "orders", ORDER),
    ]
    assert [at[h] for h in caused] == sorted(at[h] for h in caused), hops
    assert at[("delivered", "billing", PAY)] < at[("delivered", "notifications", NOTIFY)], hops
    assert {"orders", "billing", "notifications"} <= {r["module"] for r in streamed}
    assert len(streamed) == len(ORDER_HOPS) + ORDER_NOTES and {r["correlationId"] for r in streamed} == {cid}
    assert ("note", "billing", "withdraw 100.00, balance 400.00") in hops
    assert {m for kind, m, _ in hops if kind == "note"} == {"orders", "billing", "notifications"}
    assert [f["kind"] for f in flows if f["correlationId"] == cid] == ["order"]


async def test_the_front_pauses_billing_in_every_replica_and_the_order_settles_once_resumed(
    topology: Topology,
) -> None:
    if topology.broker != "nats":
        pytest.skip("the console reaches the module processes over core NATS (FLOWS_FEED)")
    operator = {"Authorization": f"Bearer {topology.operator_token}"}
    async with client(topology) as c:
        login, auth = await funded(c, 500)
        modules = (await c.get("/admin/modules", headers=operator)).json()
        assert modules["modules"]["billing"]["processes"] == 2, modules
        assert {m["state"] for m in modules["modules"].values()} == {"running"}
        r = await c.post("/admin/modules/billing/pause", headers=operator)
        assert (r.json()["state"], r.json()["processes"]) == ("paused", 2), r.text
        try:
            # billing's HTTP routes stay up; its consumers take nothing: createOrder answers 202
            assert await balance(c, login, auth) == 500
            r = await c.post("/order/createOrder", json={"login": login, "price": 100}, headers=auth)
            assert r.status_code == 202, r.text
            location = r.headers["location"]

            async def waiting() -> int:
                billing = (await c.get("/admin/modules", headers=operator)).json()["modules"]["billing"]
                return int(billing["backlog"])

            assert await until(waiting, timeout=20, interval=0.1) >= 1
        finally:
            r = await c.post("/admin/modules/billing/resume", headers=operator)
            assert r.json()["state"] == "running", r.text

        async def status() -> object:
            order = (await c.get(location, headers=auth)).json()
            return order["status"] if order["status"] != "pending" else None

        assert await until(status, timeout=20, interval=0.1) == "paid"
        assert await balance(c, login, auth) == 400
        # chaos set at the front reaches every module process alike
        r = await c.put("/admin/chaos", json={"seed": 3, "duplicate": 1}, headers=operator)
        chaos = r.json()
        assert chaos["enabled"] and chaos["alike"] and chaos["processes"] == 6, chaos
        r = await c.put("/admin/chaos", json={}, headers=operator)
        assert r.json()["enabled"] is False and r.json()["processes"] == 6, r.text


async def test_50_concurrent_orders_against_10_affordable_pay_exactly_10(topology: Topology) -> None:
    async with client(topology) as c:
        login, auth = await funded(c, 1000)
        replies = await asyncio.gather(
            *(
                c.post("/order/createOrder", json={"login": login, "price": 100}, headers=auth)
                for _ in range(50)
            )
        )
        assert {r.status_code for r in replies} <= {200, 202}
        orders = await settled(c, login, auth, 50)
        assert sum(o["status"] == "paid" for o in orders) == 10
        assert await balance(c, login, auth) == 0


async def test_concurrent_retries_with_one_key_charge_once(topology: Topology) -> None:
    async with client(topology) as c:
        login, auth = await funded(c, 500)
        key = uuid4().hex
        replies = await asyncio.gather(
            *(
                c.post(
                    "/order/createOrder",
                    json={"login": login, "price": 70},
                    headers={**auth, "Idempotency-Key": key},
                )
                for _ in range(10)
            )
        )
        assert len({r.json()["id"] for r in replies}) == 1
        await settled(c, login, auth, 1)
        assert await balance(c, login, auth) == 430


async def test_kill_9_of_a_billing_replica_mid_flow_loses_nothing(topology: Topology) -> None:
    async with client(topology) as c:
        login, auth = await funded(c, 10_000)
        victim_port = topology.ports["billing"][0]
        victim = f"billing-{victim_port}"
        answered = 0

        async def order() -> None:
            nonlocal answered
            r = await c.post("/order/createOrder", json={"login": login, "price": 30}, headers=auth)
            assert r.status_code in (200, 202), r.text
            answered += 1

        tasks = [asyncio.create_task(order()) for _ in range(120)]
        await until(lambda: answered >= 15, timeout=30)
        os.kill(topology.procs[victim].pid, signal.SIGKILL)
        await asyncio.gather(*tasks)
        orders = await settled(c, login, auth, 120)
        paid = sum(o["status"] == "paid" for o in orders)
        assert paid == 120
        assert await balance(c, login, auth) == 10_000 - 30 * 120
        topology.start_replica("billing", victim_port)
        topology.wait_ready(timeout=30)


def restart_broker(broker: str) -> None:
    if broker == "rabbitmq":
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
    else:
        subprocess.run(["pkill", "-TERM", "-x", "nats-server"], check=False)
        deadline = time.monotonic() + 20
        while subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True).returncode == 0:
            if time.monotonic() > deadline:
                raise AssertionError("nats-server did not stop")
            time.sleep(0.1)  # poll interval within the deadline above
        subprocess.run(NATS_START.split(), check=True)


async def test_a_broker_restart_mid_flow_loses_nothing_and_applies_nothing_twice(topology: Topology) -> None:
    if not shutil.which("rabbitmqctl" if topology.broker == "rabbitmq" else "pkill"):
        pytest.skip("no tool to restart the broker here")
    async with client(topology) as c:
        login, auth = await funded(c, 10_000)
        key = [uuid4().hex for _ in range(100)]
        answered: dict[str, str] = {}

        async def order(k: str) -> None:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    r = await c.post(
                        "/order/createOrder",
                        json={"login": login, "price": 20},
                        headers={**auth, "Idempotency-Key": k},
                    )
                    if r.status_code in (200, 202):
                        answered[k] = r.json()["id"]
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)  # pacing between retries

        tasks = [asyncio.create_task(order(k)) for k in key]
        await until(lambda: len(answered) >= 10, timeout=30)
        await asyncio.to_thread(restart_broker, topology.broker)
        await asyncio.gather(*tasks)
        assert len(answered) == 100 and len(set(answered.values())) == 100
        orders = await settled(c, login, auth, 100, timeout=90)
        assert all(o["status"] == "paid" for o in orders)
        assert await balance(c, login, auth) == 10_000 - 20 * 100

        async def notices() -> int:
            r = await c.get("/notice/notices/", params={"login": login, "limit": 1000}, headers=auth)
            return len(r.json()["messages"])

        async def all_notices_in() -> bool:
            return await notices() >= 101

        # notifications consume beside orders: what they held at the restart comes again after
        # BUS_ACK_WAIT, so their count is awaited (with a deadline), not read once the orders settled
        await until(all_notices_in, timeout=30)
        assert await notices() == 101  # and not one twice
        if topology.broker == "nats":
            # the flow feed's connections came back with the broker: an order now is whole at the front
            cid = f"after-{uuid4().hex[:12]}"
            r = await c.post(
                "/order/createOrder",
                json={"login": login, "price": 20},
                headers={**auth, "X-Correlation-ID": cid},
            )
            assert r.status_code == 200, r.text
            await whole_flow(c, topology, cid)


async def test_the_invariants_hold_over_everything_that_ran(topology: Topology) -> None:
    async def clean() -> bool:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "check",
            env={**os.environ, "DATABASE_URL": topology.database_url},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        clean.last = out.decode()  # type: ignore[attr-defined]
        return proc.returncode == 0

    try:
        await until(clean, timeout=30, interval=0.5)
    except AssertionError:
        raise AssertionError(clean.last) from None  # type: ignore[attr-defined]
