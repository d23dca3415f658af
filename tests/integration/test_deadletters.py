"""Poison events: dead-lettered after BUS_MAX_ATTEMPTS deliveries, listed, redrivable; the flow goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.bus import Envelope
from app.config import Settings
from app.main import create_app
from app.system import System
from tests.support.asgi import running
from tests.support.auth import operator
from tests.support.poll import until
from tests.support.seed import walk_seed_scenario


@pytest.fixture
async def poisoned(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, System]]:
    app = create_app(settings.with_(bus_max_attempts=3))
    async with running(app) as client:
        yield client, app.state.system


def poison() -> Envelope:
    # a negative charge would credit the account: billing must refuse it, never apply it
    return Envelope(
        type="orders.payment_requested.v1",
        source="orders",
        subject="mallory",
        data={"order_id": "o-poison", "login": "mallory", "amount": -500},
    )


async def letters(client: httpx.AsyncClient) -> list[dict[str, object]]:
    r = await client.get("/admin/deadletters", headers=operator(client.app))  # type: ignore[attr-defined]
    assert r.status_code == 200
    found: list[dict[str, object]] = r.json()["deadLetters"]
    return found


async def test_poison_event_is_dead_lettered_after_max_attempts_and_the_flow_goes_on(
    poisoned: tuple[httpx.AsyncClient, System],
) -> None:
    client, system = poisoned
    assert system.bus is not None
    event = poison()
    await system.bus.publish(event)
    found = await until(lambda: letters(client))
    assert len(found) == 1
    letter = found[0]
    assert (letter["group"], letter["eventId"], letter["attempts"]) == ("billing", event.id, 3)
    assert "amount" in str(letter["error"])
    # the good flow is not blocked by the poison
    await walk_seed_scenario(client)
    report = (await client.get("/admin/invariants", headers=operator(client.app))).json()  # type: ignore[attr-defined]
    assert report["ok"], report


async def test_redrive_delivers_a_dead_letter_again(poisoned: tuple[httpx.AsyncClient, System]) -> None:
    client, system = poisoned
    assert system.bus is not None
    await system.bus.publish(poison())
    first = (await until(lambda: letters(client)))[0]
    admin = operator(client.app)  # type: ignore[attr-defined]
    r = await client.post(f"/admin/deadletters/{first['id']}/redrive", headers=admin)
    assert r.status_code == 200, r.text
    # still poison: it fails its attempts again and comes back as a second letter
    found = await until(lambda: _at_least(client, 2))
    assert [x["redrivenAt"] is not None for x in found] == [True, False]
    again = await client.post(f"/admin/deadletters/{first['id']}/redrive", headers=admin)
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")


async def _at_least(client: httpx.AsyncClient, n: int) -> list[dict[str, object]] | None:
    found = await letters(client)
    return found if len(found) >= n else None
