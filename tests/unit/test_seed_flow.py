"""The seed diagram end to end through the ASGI app, every module on in-memory SQLite and MemoryBus."""

from __future__ import annotations

from pathlib import Path

from app.bus import MemoryBus
from app.main import create_app
from tests.support.asgi import running
from tests.support.seed import walk_seed_scenario
from tests.support.settings import memory_settings


async def test_seed_scenario_through_the_asgi_app_in_memory(tmp_path: Path) -> None:
    app = create_app(memory_settings(data_dir=tmp_path))
    async with running(app) as client:
        assert isinstance(app.state.system.bus.inner.inner, MemoryBus)  # under the observers and the lab
        await walk_seed_scenario(client)
    assert_nothing_written(tmp_path)


def assert_nothing_written(data_dir: Path) -> None:
    # in memory for real: no module wrote a database file (nor the auth secret) to the data dir
    assert list(data_dir.iterdir()) == []
