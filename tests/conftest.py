from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.config import MODULES, Settings
from app.main import create_app
from app.storage.migrate import migrate
from tests.support.asgi import running
from tests.support.settings import FAST_HASH, FAST_RETRY


def new_login(prefix: str = "u") -> str:
    return f"{prefix}{uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every module's SQLite file, migrated once per test session; tests start from copies, so each
    app's start-up migration finds the schema at head (15 ms) instead of building it (~0.3 s)."""
    template = tmp_path_factory.mktemp("migrated")

    async def build() -> None:
        for module in MODULES:
            await migrate(Settings(data_dir=template).database_url_for(module), module)

    asyncio.run(build())
    return template


@pytest.fixture
def settings(tmp_path: Path, migrated_template: Path) -> Settings:
    """Every module's SQLite file under tmp_path, argon2 at test cost (what these tests check is not
    the hashing cost: tests/unit/test_auth_defaults.py keeps that)."""
    for f in migrated_template.glob("*.sqlite3"):
        shutil.copyfile(f, tmp_path / f.name)
    return Settings(data_dir=tmp_path, **FAST_HASH, **FAST_RETRY)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole system in this process, spoken to over ASGI."""
    async with running(create_app(settings)) as c:
        yield c


# markers a test gets from what it uses, so a file need not repeat them (pyproject.toml lists them all)
BROKER_PARAMS = ("bus_kind", "topology")  # conformance adapters, distributed topologies
FILE_MARKS = {"test_nats.py": ("nats",), "test_rabbitmq.py": ("rabbitmq",), "test_postgres.py": ("postgres",)}
FIXTURE_MARKS = {"pg_url": ("postgres",), "helm": ("subprocess",)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path
        marks: set[str] = set()
        if "distributed" in path.parts:
            # module processes over a broker and PostgreSQL
            marks |= {"slow", "subprocess", "postgres"}
        marks.update(FILE_MARKS.get(path.name, ()))
        params = getattr(item, "callspec", None)
        for name in BROKER_PARAMS:
            kind = params.params.get(name) if params is not None else None
            if kind in ("nats", "rabbitmq"):
                marks.add(kind)
        for fixture in getattr(item, "fixturenames", ()):
            marks.update(FIXTURE_MARKS.get(fixture, ()))
        for mark in sorted(marks):
            item.add_marker(mark)


# on the shared brokers, one test at a time: the distributed tier restarts them mid-run
BROKER_FOLDERS = ("tests/conformance/", "tests/distributed/")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N --dist loadfile`` (``make pytest``): a file's tests go to one worker, in the order
    pytest sorted them (a module-scoped app or topology starts once), and the broker tiers go, all
    together, to one worker. (xdist's own ``loadgroup`` cannot do it here: it tags tests through
    ``Item._nodeid``, which pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrokersTogether(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(BROKER_FOLDERS):
                return "brokers"
            scope: str = super()._split_scope(nodeid)
            return scope

    return BrokersTogether(config, log)
