"""The Alembic migrations build exactly the schema the models' metadata describe, so an in-memory
database created from the metadata (app/system.py, for tests) is the schema production migrates to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, Index, MetaData, String, Table, create_engine
from sqlalchemy.pool import StaticPool

from app.storage.migrate import upgrade_connection
from app.system import MODULES, in_memory


@pytest.fixture
def migrated() -> Iterator[Any]:
    """``migrated(module)``: a connection to an in-memory SQLite database migrated to head."""
    engines = []

    def open_migrated(module: str) -> Connection:
        engine = create_engine("sqlite://", poolclass=StaticPool)
        engines.append(engine)
        conn = engine.connect()
        with conn.begin():
            upgrade_connection(conn, module)
        return conn

    yield open_migrated
    for engine in engines:
        engine.dispose()


def differences(conn: Connection, module: str, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": f"{module}_alembic_version",
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    diffs: list[Any] = compare_metadata(context, metadata)
    return diffs


@pytest.mark.parametrize("module", MODULES)
def test_the_migrations_build_exactly_the_models_schema(migrated: Any, module: str) -> None:
    metadata = MODULES[module].metadata
    assert metadata.tables, f"{module} has no tables"
    assert differences(migrated(module), module, metadata) == []


def test_the_comparison_sees_a_column_an_index_and_a_table_the_migrations_lack(migrated: Any) -> None:
    changed = MetaData()
    for table in MODULES["billing"].metadata.tables.values():
        table.to_metadata(changed)
    account = changed.tables["billing_account"]
    account.append_column(Column("nickname", String(32), nullable=True))
    Index("ix_billing_account_nickname", account.c.nickname)
    Table("billing_refund", changed, Column("id", String(64), primary_key=True))

    found = {(d[0], _name(d)) for d in differences(migrated("billing"), "billing", changed)}

    assert found == {
        ("add_column", "nickname"),
        ("add_index", "ix_billing_account_nickname"),
        ("add_table", "billing_refund"),
    }


def _name(diff: tuple[Any, ...]) -> str:
    kind = diff[0]
    if kind == "add_column":
        return str(diff[3].name)
    return str(diff[1].name)


@pytest.mark.parametrize(
    ("url", "memory"),
    [
        ("sqlite+aiosqlite:///:memory:", True),
        ("sqlite://", True),
        ("sqlite:///", True),
        ("sqlite+aiosqlite:///data/billing.sqlite3", False),
        ("sqlite+aiosqlite:////abs/memory/billing.sqlite3", False),
        ("postgresql+asyncpg://postgres@127.0.0.1/ec", False),
    ],
)
def test_only_in_memory_databases_skip_the_migrations(url: str, memory: bool) -> None:
    assert in_memory(url) is memory
