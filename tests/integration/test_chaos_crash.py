"""A 1,000-order run while the server is killed -9 every few seconds and also crashes by itself
between commit and publish (CRASH_AT). A supervisor restarts it on the same data; clients retry with
their idempotency keys. Every order ends paid or rejected exactly once and the invariants hold."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from tests.conftest import new_login
from tests.support.auth import PASSWORD, bearer, operator_at
from tests.support.poll import until
from tests.support.server import Server

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

USERS = 20
ORDERS = 1000
KILL_EVERY = 1.0
MAX_KILLS = 6


class Supervisor:
    """Keeps one server process alive on a fixed port, restarting it whenever it dies."""

    def __init__(self, data: Path) -> None:
        env = {
            "CRASH_AT": "after_commit:0.001",
            "ORDER_REPLY_TIMEOUT": "5",
            "LOGIN_RATE_PER_ADDRESS": "10000",
        }
        self.server = Server(data, env=env)
        self.starts = 0
        self.failed_starts = 0
        self.kills = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        last_kill = up_since = time.monotonic()
        while not self._stop.is_set():
            proc = self.server.proc
            if proc is None or proc.poll() is not None:
                try:
                    await asyncio.to_thread(self.server.start)
                except RuntimeError:
                    # it crashed again while starting (CRASH_AT fires on start-up commits too): retry
                    self.failed_starts += 1
                    continue
                self.starts += 1
                up_since = time.monotonic()
            elif (
                self.kills < MAX_KILLS
                and time.monotonic() - last_kill > KILL_EVERY
                and time.monotonic() - up_since > 0.2
            ):
                # on a clock of its own: the self-crashes in between do not postpone the next kill
                self.server.kill()
                self.kills += 1
                last_kill = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.05)

    def stop(self) -> None:
        self._stop.set()


async def _answer(
    client: httpx.AsyncClient, auth: dict[str, str], key: str, body: dict[str, object]
) -> httpx.Response:
    # a client that loses its connection retries the same request with the same key, for a bounded time
    deadline = time.monotonic() + 90
    last: object = None
    while True:
        try:
            r = await client.post("/order/createOrder", json=body, headers={**auth, "Idempotency-Key": key})
            if r.status_code in (200, 202):
                return r
            last = f"{r.status_code} {r.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"order {key} got no answer within 90 s; last: {last}")
        await asyncio.sleep(0.05)  # pacing between retries, not a wait for a condition


async def test_repeated_kill_9_and_crashes_between_commit_and_publish_lose_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(11)
    logins = [new_login("kill") for _ in range(USERS)]
    supervisor = Supervisor(data)
    supervising = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: supervisor.starts >= 1, timeout=30)
        base = supervisor.server.base_url
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            auth: dict[str, dict[str, str]] = {}
            for login in logins:
                await _retry(
                    lambda login=login: client.post(
                        "/person/register",
                        json={"login": login, "email": f"{login}@x.io", "password": PASSWORD},
                    ),
                    ok=(200, 409),
                )
                # the token outlives the restarts: the signing secret is kept in the data dir
                token = await _retry(
                    lambda login=login: client.post(
                        "/person/login", json={"login": login, "password": PASSWORD}
                    ),
                    ok=(200,),
                )
                auth[login] = bearer(token.json()["accessToken"])
            for login in logins:
                await _retry(
                    lambda login=login: client.put(
                        "/account/operation",
                        json={"login": login, "operation": "deposit", "sum": 2000},
                        headers={**auth[login], "Idempotency-Key": f"fund-{login}"},
                    ),
                    ok=(200,),
                )
            requests = [
                (uuid4().hex, {"login": rng.choice(logins), "price": rng.choice([20, 75, 150])})
                for _ in range(ORDERS)
            ]
            limit = asyncio.Semaphore(32)

            async def one(key: str, body: dict[str, object]) -> httpx.Response:
                async with limit:
                    return await _answer(client, auth[str(body["login"])], key, body)

            answers = await asyncio.gather(*(one(k, b) for k, b in requests))
            assert len({a.json()["id"] for a in answers}) == ORDERS, "one order per key"
            supervisor.stop()
            await supervising
            assert supervisor.kills >= 2, "the run ended before the server was killed twice"
    finally:
        supervisor.stop()
        with contextlib.suppress(Exception):
            await supervising
        supervisor.server.kill()

    # one last clean start on the same data lets the relays drain what the last crash left
    with Server(data) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:

            async def settled() -> bool:
                report = (await client.get("/admin/invariants", headers=operator_at(data))).json()
                figures = {i["name"]: i["figures"] for i in report["invariants"]}
                done = figures["orders paid, rejected or freshly pending"]
                return bool(done["paid"] + done["rejected"] == ORDERS and report["ok"])

            await until(settled, timeout=30, interval=0.2)
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "check", "--data-dir", str(data), stdout=asyncio.subprocess.PIPE
    )
    report, _ = await check.communicate()
    assert check.returncode == 0, report.decode()
    crashes = supervisor.starts - 1 - supervisor.kills + supervisor.failed_starts
    print(f"\nstarts={supervisor.starts} kills={supervisor.kills} self-crashes={crashes}\n{report.decode()}")


async def _retry(call: object, ok: tuple[int, ...]) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            r: httpx.Response = await call()  # type: ignore[operator]
            if r.status_code in ok:
                return r
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("no success within 60 s")
        await asyncio.sleep(0.05)  # pacing between retries
