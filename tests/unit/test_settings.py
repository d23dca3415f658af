"""Settings: built directly they read nothing; ``Settings.load`` reads the environment, ``.env`` and a
secrets directory, and refuses a bad value with a message naming the variable and what it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.config import MODULES, Settings, SettingsError
from app.ops.settings_doc import accepts, markdown, shown

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "a-secret-of-more-than-thirty-two-characters"


def load(environ: dict[str, str], **flags: object) -> Settings:
    """The environment given, no .env file, no secrets directory."""
    return Settings.load(environ=environ, env_file=None, secrets_dir=None, **flags)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("PORT", "abc", "valid integer"),
        ("PORT", "0", "greater than or equal to 1"),
        ("PORT", "65536", "less than or equal to 65535"),
        ("AUTH_MODE", "of", "'on' or 'off'"),
        ("BUS_BACKOFF_BASE", "-1", "greater than 0"),
        ("BUS_BACKOFF_CAP", "0.01", "at least BUS_BACKOFF_BASE"),
        ("BUS_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
        ("BUS_ACK_WAIT", "0", "greater than 0"),
        ("BUS_REPLICAS", "6", "less than or equal to 5"),
        ("ORDER_REPLY_TIMEOUT", "0", "greater than 0"),
        ("TOKEN_TTL_SECONDS", "-5", "greater than or equal to 1"),
        ("FLOWS_MAX", "-1", "greater than or equal to 0"),
        ("AUTH_HASH_TIME_COST", "0", "greater than or equal to 1"),
        ("AUTH_HASH_MEMORY_KIB", "7", "greater than or equal to 8"),
        ("UP_PORT", "65001", "less than or equal to 65000"),
        ("UP_REPLICAS", "orders=9", "from 1 to 8 processes"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.0/8,nginx", "neither an IP address nor a network"),
        ("LOG_FORMAT", "xml", "'auto', 'json' or 'console'"),
        ("LOG_LEVEL", "loud", "'debug'"),
        ("OTEL_TRACES", "jaeger", "'otlp'"),
        ("ACCESS_LOG", "maybe", "valid boolean"),
        ("MODULES", "person,shipping", "no module named 'shipping'"),
        ("MODULES", "orders,orders", "names orders more than once"),
        ("MODULES", " , ", "names no module"),
        ("DATABASE_URL", "mysql://db/x", "must start with sqlite+aiosqlite:// or postgresql+asyncpg://"),
        ("PERSON_DATABASE_URL", "postgresql://no-async-driver/x", "must start with"),
        ("BUS_URL", "kafka://broker:9092", "must start with memory://"),
        ("BUS_NAMESPACE", "a.b", "should match pattern"),
        ("BUS_CHAOS", "fail=2", "probability"),
        ("CRASH_AT", "later:0.5", "after_commit"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_what_it_accepts(
    variable: str, value: str, said: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load({variable: value})
    message = str(refused.value)
    assert f"{variable}={value!r}: " in message
    assert said in message
    assert f"{variable} accepts {accepts(Settings.model_fields[variable.lower()])}" in message


def test_a_refused_secret_is_not_echoed() -> None:
    with pytest.raises(SettingsError, match=r"AUTH_SECRET=\(hidden\): .*32") as refused:
        load({"AUTH_SECRET": "short-secret"})
    assert "short-secret" not in str(refused.value)


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as refused:
        load({"PORT": "abc", "AUTH_MODE": "of", "LOG_FORMAT": "xml"})
    assert all(f"{v}=" in str(refused.value) for v in ("PORT", "AUTH_MODE", "LOG_FORMAT"))


def test_environment_values_are_parsed_into_their_types() -> None:
    s = load(
        {
            "PORT": "9001",
            "DATA_DIR": "/srv/ec",
            "MODULES": " orders, billing ",
            "ACCESS_LOG": "1",
            "LOG_LEVEL": "DEBUG",
            "BUS_BACKOFF_BASE": "0.5",
            "BUS_BACKOFF_CAP": "0.5",
            "AUTH_SECRET": GOOD_SECRET,
            "AUTH_HASH_TIME_COST": "1",
            "AUTH_HASH_MEMORY_KIB": "8",
            "BUS_CHAOS": "seed=1,fail=0.1",
            "otel_traces": "memory",  # names in any case, as pydantic-settings reads os.environ
        }
    )
    assert (s.port, s.data_dir, s.modules) == (9001, Path("/srv/ec"), ("orders", "billing"))
    assert (s.access_log, s.log_level, s.otel_traces) == (True, "debug", "memory")
    assert (s.bus_backoff_base, s.bus_backoff_cap) == (0.5, 0.5)
    assert s.auth_secret is not None and s.auth_secret.get_secret_value() == GOOD_SECRET
    assert (s.auth_hash_time_cost, s.auth_hash_memory_kib, s.bus_chaos) == (1, 8, "seed=1,fail=0.1")


def test_an_empty_variable_counts_as_unset() -> None:
    s = load({"PORT": "", "DATABASE_URL": "", "AUTH_SECRET": "", "MODULES": ""})
    assert (s.port, s.database_url, s.auth_secret, s.modules) == (8000, None, None, MODULES)


def test_nothing_set_gives_the_defaults() -> None:
    assert load({}) == Settings()
    assert Settings().log_format == "auto" and Settings().access_log is False
    assert (Settings().auth_hash_time_cost, Settings().auth_hash_memory_kib) == (2, 19456)


def test_a_module_database_url_wins_over_database_url(tmp_path: Path) -> None:
    shared, own = "postgresql+asyncpg://pg/shared", "sqlite+aiosqlite:////var/orders.sqlite3"
    s = load({"DATABASE_URL": shared, "ORDERS_DATABASE_URL": own}, data_dir=tmp_path)
    assert s.database_url_for("orders") == own
    assert s.database_url_for("billing") == shared
    assert s.module_database_urls == {"orders": own}
    alone = Settings(data_dir=tmp_path)
    assert alone.database_url_for("person") == f"sqlite+aiosqlite:///{tmp_path / 'person.sqlite3'}"


def test_a_settings_built_directly_reads_no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PORT=9100\nMODULES=orders\n")
    monkeypatch.chdir(tmp_path)  # where load() looks for .env by default
    assert (Settings().port, Settings().modules) == (8000, MODULES)
    assert Settings.load(environ={}, secrets_dir=None).port == 9100


def test_load_reads_env_file_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# a comment\nPORT=9100\nMODULES=orders,billing\nLOG_LEVEL=warning\n"
        "POSTGRES_PASSWORD=for-docker-compose\n"  # not a setting: ignored, not refused
    )
    s = Settings.load(environ={"PORT": "9200"}, env_file=env_file, secrets_dir=None)
    assert (s.port, s.modules, s.log_level) == (9200, ("orders", "billing"), "warning")
    missing = Settings.load(environ={}, env_file=tmp_path / "absent.env", secrets_dir=None)
    assert missing == Settings()


def test_a_bad_value_in_env_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTH_MODE=of\n")
    with pytest.raises(SettingsError, match="AUTH_MODE='of'"):
        Settings.load(environ={}, env_file=tmp_path / ".env", secrets_dir=None)


def test_load_reads_auth_secret_from_secrets_dir_and_the_environment_wins(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "auth_secret").write_text(GOOD_SECRET + "\n")  # as Docker writes a secret
    s = Settings.load(environ={}, env_file=None, secrets_dir=secrets)
    assert s.auth_secret is not None and s.auth_secret.get_secret_value() == GOOD_SECRET
    other = "b" * 40
    s = Settings.load(environ={"AUTH_SECRET": other}, env_file=None, secrets_dir=secrets)
    assert s.auth_secret is not None and s.auth_secret.get_secret_value() == other
    absent = Settings.load(environ={}, env_file=None, secrets_dir=tmp_path / "none")
    assert absent.auth_secret is None


def test_flags_win_over_the_environment_and_a_bad_one_is_named_as_a_flag() -> None:
    s = load({"PORT": "9001", "MODULES": "orders"}, port=9002, modules="person,billing", host=None)
    assert (s.port, s.modules, s.host) == (9002, ("person", "billing"), "127.0.0.1")
    with pytest.raises(SettingsError) as refused:
        load({}, port=70000, data_dir=Path("d"))
    assert "--port=70000: " in str(refused.value) and "--port accepts an integer from 1 to 65535" in str(
        refused.value
    )


def test_with_checks_the_change_like_any_other_value() -> None:
    s = Settings(port=9000)
    assert s.with_(bus_max_attempts=3).port == 9000
    with pytest.raises(SettingsError, match="BUS_MAX_ATTEMPTS=0"):
        s.with_(bus_max_attempts=0)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Settings().port = 1  # type: ignore[misc]


def test_shown_settings_hide_secrets_and_passwords() -> None:
    s = Settings(
        auth_secret=GOOD_SECRET,
        bus_url="amqp://guest:hunter2@rabbit:5672/",
        database_url="postgresql+asyncpg://app:s3cret@db/ec",
    )
    text = shown(s)
    assert GOOD_SECRET not in text and "hunter2" not in text and "s3cret" not in text
    assert "AUTH_SECRET=(set)\n" in text and "BUS_URL=amqp://guest:(hidden)@rabbit:5672/\n" in text
    assert "PORT=8000\n" in text and "MODULES=person,billing,orders,notifications\n" in text


def test_the_committed_settings_page_is_what_the_model_generates() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == markdown(Settings), (
        "docs/settings.md is stale: regenerate it with `python -m app settings --markdown > docs/settings.md`"
    )


def test_every_setting_has_a_row_saying_what_it_accepts() -> None:
    page = markdown(Settings)
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"| `{name.upper()}` |" in page


def test_every_variable_the_helm_chart_sets_is_a_setting() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "eventcollab" / "values.yaml").read_text())
    known = {name.upper() for name in Settings.model_fields}
    assert set(values["env"]) <= known
    load({k: str(v) for k, v in values["env"].items()})  # and the chart's values are accepted
