"""The topology's plan without starting it: its own names and ports, the nginx config it writes, and
how ``down`` tells its processes from whatever later holds their pid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import main
from app.ops import processes
from app.ops.topology import (
    CONSOLE,
    FRONT,
    STATE,
    Topology,
    TopologyError,
    down,
    load_state,
    own_name,
    status,
)
from tests.support.pg import PG, reachable
from tests.support.pg import START as PG_START
from tests.support.server import free_port, free_run


def test_the_namespace_and_database_are_the_run_directorys_own(tmp_path: Path) -> None:
    a, b = tmp_path / "one" / ".run", tmp_path / "two" / ".run"
    assert own_name(a) == own_name(a) != own_name(b)
    assert own_name(a).startswith("ec_one_") and len(own_name(a)) <= 40
    t = Topology(run_dir=a)
    assert t.namespace == own_name(a) and t.database_url.endswith("/" + own_name(a))
    assert t.owns_database and t.owns_namespace
    given = Topology(run_dir=a, namespace="mine", database_url="postgresql+asyncpg://u@h/db")
    assert (given.namespace, given.owns_namespace, given.owns_database) == ("mine", False, False)


def test_one_base_port_moves_every_process_and_replicas_change_the_layout(tmp_path: Path) -> None:
    t = Topology(run_dir=tmp_path, port=9000)
    assert t.ports == {
        "person": [9001],
        "billing": [9002, 9003],
        "orders": [9004, 9005],
        "notifications": [9006],
        CONSOLE: [9007],
    }
    more = Topology(run_dir=tmp_path, port=9100, replicas={"orders": 3, "billing": 1})
    assert more.ports["orders"] == [9103, 9104, 9105] and more.ports[CONSOLE] == [9107]
    with pytest.raises(RuntimeError, match="no module order"):
        Topology(run_dir=tmp_path, replicas={"order": 2})


def test_the_nginx_conf_follows_the_layout(tmp_path: Path) -> None:
    t = Topology(run_dir=tmp_path, port=9000, order_reply_timeout=7)
    conf = t.nginx_conf()
    assert "upstream orders {\n        server 127.0.0.1:9004 max_fails=1 fail_timeout=2s;\n" in conf
    assert "server 127.0.0.1:9005" in conf and conf.count("keepalive 64;") == 5
    assert "listen 127.0.0.1:9000" in conf and "daemon off;" in conf
    # createOrder may hold its request ORDER_REPLY_TIMEOUT: nginx waits longer than that
    assert "proxy_read_timeout 17s;" in conf
    assert "proxy_next_upstream error timeout;" in conf
    assert "location ^~ /order/ { proxy_pass http://orders; }" in conf
    assert "location / { proxy_pass http://console; }" in conf
    for status_code in (502, 504):
        assert f"error_page {status_code} = @problem_{status_code};" in conf


def test_a_recorded_pid_that_another_process_now_holds_is_left_alone(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import signal; signal.pause()"], start_new_session=True
    )
    try:
        mine = processes.Record.of("orders-9004", sleeper.pid, 9004)
        assert mine.state() == "running"
        # the same pid with another start time: what a reboot or pid wrap-around leaves in a pid file
        assert mine.started is not None
        impostor = processes.Record("orders-9004", sleeper.pid, mine.started - 1, 9004)
        assert impostor.state() == "pid reused"
        assert processes.stop([impostor], timeout=1) == ([], ["orders-9004"])
        assert sleeper.poll() is None
        assert processes.stop([mine], timeout=5) == (["orders-9004"], [])
        assert sleeper.wait(5) is not None
    finally:
        sleeper.kill()


def test_down_stops_what_the_state_names_keeps_the_record_and_a_second_down_finds_nothing(
    tmp_path: Path,
) -> None:
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import signal; signal.pause()"], start_new_session=True
    )
    t = Topology(run_dir=tmp_path, port=9000)
    t.records[FRONT] = processes.Record.of(FRONT, sleeper.pid, 9000)
    t.save()
    try:
        assert "running" in status(tmp_path)
        assert down(tmp_path) == "stopped 1 processes"
        assert sleeper.wait(5) is not None
        state = load_state(tmp_path)
        assert state is not None and state["processes"] == [] and state["namespace"] == t.namespace
        assert down(tmp_path) == "nothing was running"
        assert status(tmp_path).startswith("not running (last: http://127.0.0.1:9000")
    finally:
        sleeper.kill()


def test_an_older_pids_json_is_checked_by_command_line(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (tmp_path / "pids.json").write_text(json.dumps({"gateway": stranger.pid}))
        assert "left alone" in down(tmp_path)
        assert stranger.poll() is None and not (tmp_path / "pids.json").exists()
    finally:
        stranger.kill()
    assert not (tmp_path / STATE).exists()


def test_up_refuses_a_sqlite_database_and_a_memory_bus(capsys: pytest.CaptureFixture[str]) -> None:
    for flags, says in (
        (["--bus-url", "memory://"], "must be nats:// or amqp://"),
        (["--database-url", "sqlite+aiosqlite:///x.db"], "must be postgresql+asyncpg://"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(["up", *flags])
        assert stop.value.code == 2 and says in capsys.readouterr().err


def test_a_failed_up_says_why_and_leaves_no_process_on_record(tmp_path: Path) -> None:
    nobody = free_port()  # nothing listens there: PostgreSQL "refuses"
    t = Topology(
        run_dir=tmp_path,
        port=free_run(12),
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{nobody}/x",
    )
    with pytest.raises(TopologyError, match=f"PostgreSQL at 127.0.0.1:{nobody} refused"):
        t.start()
    state = load_state(tmp_path)
    assert state is not None and state["processes"] == []


def test_a_failing_migration_shows_its_own_output(tmp_path: Path) -> None:
    if not reachable():
        pytest.skip(f"PostgreSQL is not running on 127.0.0.1:5432; start it with: {PG_START}")
    # a setting the migrate command refuses: its message, not a CalledProcessError, reaches the user
    t = Topology(
        run_dir=tmp_path,
        database_url=f"postgresql+asyncpg://{PG}/postgres",
        extra_env={"ORDER_REPLY_TIMEOUT": "-1"},
    )
    with pytest.raises(TopologyError) as failed:
        t.migrate()
    assert "`python -m app migrate` failed (exit 2)" in str(failed.value)
    assert "ORDER_REPLY_TIMEOUT='-1'" in str(failed.value)
