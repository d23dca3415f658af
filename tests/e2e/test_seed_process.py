from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.auth import log_in
from tests.support.seed import walk_seed_scenario
from tests.support.server import Server

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


async def test_seed_scenario_against_a_real_server_process(tmp_path: Path) -> None:
    with Server(tmp_path / "data") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            login = await walk_seed_scenario(client)
            issued_before = await log_in(client, login)
    # data survives a restart, and so do the password and the tokens (the secret is in the data dir)
    with Server(tmp_path / "data") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            for auth in (issued_before, await log_in(client, login)):
                r = await client.get("/account/", params={"login": login}, headers=auth)
                assert r.json()["balance"] == 700
                r = await client.get("/notice/notices/", params={"login": login}, headers=auth)
                assert len(r.json()["messages"]) == 3
            assert (await client.get("/account/", params={"login": login})).status_code == 401
