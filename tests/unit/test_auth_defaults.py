"""What authentication does by default: it is on, and argon2id hashes at the production cost, tested
once here: every other test runs at the test-only cost (tests/support/settings.py FAST_HASH)."""

from __future__ import annotations

from argon2 import PasswordHasher, extract_parameters

from app.config import Settings
from app.edge.auth import Auth
from tests.support.auth import PASSWORD
from tests.support.settings import FAST_HASH, SECRET


def test_the_default_settings_hash_at_owasp_cost_t2_m19mib_p1() -> None:
    settings = Settings()
    assert (settings.auth_hash_time_cost, settings.auth_hash_memory_kib) == (2, 19 * 1024)
    hasher = Auth(settings.with_(auth_secret=SECRET)).hasher
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (2, 19 * 1024, 1)


async def test_a_real_hash_at_the_production_cost_verifies_and_records_that_cost() -> None:
    auth = Auth(Settings(auth_secret=SECRET))
    stored = await auth.hash(PASSWORD)
    params = extract_parameters(stored)
    assert (params.type.name, params.time_cost, params.memory_cost, params.parallelism) == ("ID", 2, 19456, 1)
    assert await auth.check_password(stored, PASSWORD)
    assert not await auth.check_password(stored, PASSWORD + "!")


async def test_the_test_cost_is_a_setting_and_its_hashes_still_verify() -> None:
    auth = Auth(Settings(auth_secret=SECRET, **FAST_HASH))
    stored = await auth.hash(PASSWORD)
    assert extract_parameters(stored).time_cost == FAST_HASH["auth_hash_time_cost"]
    assert extract_parameters(stored).memory_cost == FAST_HASH["auth_hash_memory_kib"]
    assert await auth.check_password(stored, PASSWORD)
    assert not await auth.check_password(stored, PASSWORD.upper())
    # a hash made at another cost still verifies: lowering the test cost never locks anyone out
    assert await auth.check_password(PasswordHasher(time_cost=2, memory_cost=19456).hash("p" * 8), "p" * 8)


def test_auth_is_on_by_default() -> None:
    assert Settings().auth_mode == "on"
    assert Settings.load(environ={}, env_file=None, secrets_dir=None).auth_mode == "on"
