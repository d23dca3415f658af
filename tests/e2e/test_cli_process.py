"""The command line as a user runs it: a real ``python -m app`` (and the ``eventcollab`` script)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import Server


@pytest.mark.slow
def test_serve_says_where_to_go_and_no_library_chatter(tmp_path: Path) -> None:
    with Server(tmp_path / "data", env={"LOG_LEVEL": "info", "LOG_FORMAT": "console"}) as server:
        pass  # ready (/health/ready answered), then stopped: its start-up is in the log
    text = server.log_path.read_text(errors="replace")
    assert f"serving on {server.base_url} — flow viewer /, API docs /docs" in text, text
    for chatter in ("setup plugin", "Context impl", "Will assume", "Uvicorn running", "Started server"):
        assert chatter not in text, text
    assert "Running upgrade" in text  # a fresh data dir: the schema changes are worth their lines


def test_a_bad_setting_stops_start_up_with_a_message_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(data)],
        env={**os.environ, "PORT": "abc", "AUTH_MODE": "of"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "PORT='abc': input should be a valid integer" in done.stderr
    assert "AUTH_MODE='of': input should be 'on' or 'off'" in done.stderr
    assert "Traceback" not in done.stderr and not data.exists()


def test_the_console_script_reaches_the_bench_help_past_a_server_flag() -> None:
    script = Path(sys.executable).with_name("eventcollab")
    done = subprocess.run(
        [str(script), "--port", "9000", "bench", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: eventcollab bench ") and "--clients" in done.stdout
