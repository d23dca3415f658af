from __future__ import annotations

import httpx

from tests.e2e.seed import walk_seed_scenario


async def test_seed_scenario_through_the_asgi_app(client: httpx.AsyncClient) -> None:
    await walk_seed_scenario(client)
