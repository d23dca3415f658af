"""The command line, in-process: each command's flags and help are its own, the system flags may come
before the command, and what cannot be done exits 2 with a message (nothing is started)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from app.__main__ import COMMANDS, main, parse
from app.config import Settings
from app.ops import asyncapi
from app.ops.bench import options
from app.ops.settings_doc import markdown


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_its_own_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: python -m app {command} ")
    own = options.DESCRIPTION if command == "bench" else COMMANDS[command]
    assert own in " ".join(out.split())  # its own description, not the top-level one
    others = {
        "check": "--pending-grace",
        "bench": "--clients",
        "up": "--replicas",
        "asyncapi": "--mermaid",
        "schema-check": "--against",
    }
    for other, its_flag in others.items():
        assert (its_flag in out) == (other == command)


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    _, serve, _ = run(capsys, "serve", "--help")
    assert "(default: $PORT, else 8000)" in " ".join(serve.split())
    _, bench, _ = run(capsys, "bench", "--help")
    assert "(default: 64)" in bench
    _, up, _ = run(capsys, "up", "--help")
    assert "(default: .run)" in up and "$UP_PORT, else 8080" in " ".join(up.split())


def test_a_system_flag_before_bench_help_prints_the_bench_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--port", "9000", "bench", "--help")
    assert code == 0
    assert out.startswith("usage: python -m app bench ") and "--clients" in out


@pytest.mark.parametrize("command", ["bench", "up", "down", "status", "asyncapi", "settings"])
def test_a_system_flag_with_a_command_that_does_not_take_it_is_refused(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run(capsys, "--port", "9000", command)
    assert code == 2 and out == ""
    assert f"--port: a flag of serve, migrate, check and operator-token, not of {command}" in err


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"python -m app {metadata.version('eventcollab')}\n")


def test_no_command_is_serve_with_the_flags_before_it() -> None:
    invocation = parse(["--port", "8011", "--data-dir", "X", "--modules", "orders"])
    assert invocation.command == "serve"
    assert invocation.flags == {"port": 8011, "data_dir": Path("X"), "modules": "orders"}
    assert parse([]).command == "serve" and parse([]).flags == {}


def test_a_flag_after_the_command_wins_over_one_before_it() -> None:
    invocation = parse(["--port", "8011", "check", "--port", "8012", "--json"])
    assert (invocation.command, invocation.flags, invocation.args.json) == ("check", {"port": 8012}, True)


def test_an_unknown_module_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    code, _, err = run(capsys, "migrate", "--data-dir", str(data), "--modules", "person,shipping")
    assert code == 2
    assert "--modules='person,shipping': no module named 'shipping'" in err
    assert "Traceback" not in err and not data.exists()


def test_a_bad_port_flag_is_refused_by_argparse_with_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve", "--port", "abc")
    assert code == 2 and "usage: python -m app serve" in err and "invalid int value: 'abc'" in err


def test_check_refuses_a_negative_pending_grace(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "--pending-grace", "-1")
    assert code == 2 and "--pending-grace: '-1': seconds must be 0 or more" in err


def test_check_json_is_a_check_flag_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "migrate", "--json")
    assert code == 2 and "unrecognized arguments: --json" in err


def test_bench_flag_out_of_bounds_is_refused_with_the_bench_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bench", "--clients", "0")
    assert code == 2
    assert "usage: python -m app bench" in err and "--clients must be between 1 and 2048" in err


def test_up_refuses_the_in_process_bus(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "up", "--bus-url", "memory://", "--run-dir", str(tmp_path / "run"))
    assert code == 2 and "must be nats:// or amqp://" in err
    assert not (tmp_path / "run").exists()


def test_down_and_status_with_nothing_up(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    main(["status", "--run-dir", str(tmp_path)])
    main(["down", "--run-dir", str(tmp_path)])
    assert capsys.readouterr().out == "not running\nnothing was running\n"


def test_asyncapi_and_settings_print_the_generated_documents(capsys: pytest.CaptureFixture[str]) -> None:
    main(["asyncapi"])
    assert capsys.readouterr().out == asyncapi.render()
    main(["asyncapi", "--mermaid"])
    assert capsys.readouterr().out == asyncapi.mermaid()
    main(["settings", "--markdown"])
    assert capsys.readouterr().out == markdown(Settings)


def test_the_console_script_is_this_main() -> None:
    (script,) = metadata.entry_points(group="console_scripts", name="eventcollab")
    assert script.value == "app.__main__:main"
