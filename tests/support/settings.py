"""Settings for tests: argon2 at test cost, and the whole system on in-memory databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.config import Settings

# argon2id at its minimum cost (t=1, m=8 KiB): ~0.1 ms a hash and verify, against ~57 ms at the
# production t=2, m=19 MiB (measured here). For every test where the cost is not what is tested;
# tests/unit/test_auth_defaults.py keeps the production parameters tested.
FAST_HASH: dict[str, Any] = {"auth_hash_time_cost": 1, "auth_hash_memory_kib": 8}
# the same for a server process (AUTH_HASH_TIME_COST, AUTH_HASH_MEMORY_KIB)
FAST_HASH_ENV = {name.upper(): str(value) for name, value in FAST_HASH.items()}
# fast retries: a handler failure costs milliseconds, not the production 50 ms doubling
FAST_RETRY: dict[str, Any] = {"bus_backoff_base": 0.005, "bus_backoff_cap": 0.05}
# each module's Database opens its own in-memory SQLite (one connection, StaticPool): nothing on disk
IN_MEMORY = "sqlite+aiosqlite:///:memory:"
SECRET = "a test-only secret: 64 characters, as many as the generated one.."
OPERATOR = "test-only-operator-token-never-generated-into-a-data-dir"


def memory_settings(data_dir: Path = Path("unused-data-dir"), **changes: Any) -> Settings:
    """Every module on an in-memory SQLite database, a fixed secret: the system touches no file."""
    return Settings(
        data_dir=data_dir,
        database_url=IN_MEMORY,
        auth_secret=SECRET,
        operator_token=OPERATOR,
        **FAST_HASH,
        **FAST_RETRY,
    ).with_(**changes)
