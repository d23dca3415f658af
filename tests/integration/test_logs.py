"""JSON log lines carry the correlation id of the request, and of the events that request caused."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from app.config import Settings
from app.main import create_app
from app.observe import logs
from tests.conftest import new_login
from tests.support.asgi import running
from tests.support.auth import PASSWORD
from tests.support.poll import until


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """``logs.configure`` into a buffer; the root logger and structlog are put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_stdlib_and_structlog_lines_are_json_objects(captured: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("started on port %d", 8000)
    structlog.get_logger("app.test").warning("hello", answer=42)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("app.test").exception("it failed")
    first, second, third = lines(captured)
    assert (first["event"], first["level"], first["logger"]) == (
        "started on port 8000",
        "info",
        "uvicorn.error",
    )
    assert (second["event"], second["answer"], second["level"]) == ("hello", 42, "warning")
    assert "RuntimeError: boom" in third["exception"]
    assert all("timestamp" in line and "correlation_id" not in line for line in (first, second, third))


def test_console_format_is_not_json() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure("info", "console", stream=stream)
        logging.getLogger("app.test").info("for humans")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    assert "for humans" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue().splitlines()[0])


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_is_console_on_a_terminal_and_json_otherwise() -> None:
    piped = io.StringIO()
    logs.configure("info", "auto", stream=piped)
    logging.getLogger("app.test").info("to a pipe")
    assert json.loads(piped.getvalue())["event"] == "to a pipe"

    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        logs.configure("info", "auto", stream=terminal)
        logging.getLogger("app.test").info("to a terminal")
        terminal.flush()
        written = os.read(leader, 4096).decode()
    os.close(leader)
    assert "to a terminal" in written
    with pytest.raises(json.JSONDecodeError):
        json.loads(written)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("level", ["info", "debug"])
def test_library_start_up_chatter_is_dropped_unless_debugging(level: str) -> None:
    stream = io.StringIO()
    logs.configure(level, "json", stream=stream)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin %s", "alembic.autogenerate.schemas")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> person_0001, initial")
    logging.getLogger("alembic.runtime.migration").warning("a warning is never dropped")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("uvicorn.error").info("Shutting down")
    events = [line["event"] for line in lines(stream)]
    kept = ["Running upgrade  -> person_0001, initial", "a warning is never dropped", "Shutting down"]
    if level == "debug":
        kept = [
            "setup plugin alembic.autogenerate.schemas",
            "Context impl SQLiteImpl.",
            *kept[:2],
            "Application startup complete.",
            kept[2],
        ]
    assert events == kept


async def test_lines_of_a_request_and_of_the_events_it_caused_carry_its_correlation_id(
    settings: Settings, captured: io.StringIO
) -> None:
    # every delivery fails: the bus's redelivery warnings and the dead-letter error are logged while
    # handling person.registered.v1, which the request below caused
    app = create_app(settings.with_(bus_chaos="seed=7,fail=1.0", bus_max_attempts=2))
    request_log = logging.getLogger("app.test.route")

    @app.get("/test/log")
    async def log_something() -> dict[str, str]:
        request_log.info("inside the request")
        return {}

    async with running(app) as client:
        headers = {"X-Correlation-ID": "abc"}
        assert (await client.get("/test/log", headers=headers)).status_code == 200
        login = new_login()
        r = await client.post(
            "/person/register",
            json={"login": login, "email": f"{login}@example.com", "password": PASSWORD},
            headers=headers,
        )
        assert r.status_code == 200, r.text

        await until(lambda: dead_lettered(lines(captured)))
        await client.get("/test/log")  # another request, its own id

    found = lines(captured)
    inside = [x for x in found if x["event"] == "inside the request"]
    assert inside[0]["correlation_id"] == "abc"
    assert inside[1]["correlation_id"] not in ("", "abc")
    redeliveries = [x for x in found if str(x["event"]).startswith("redelivering person.registered.v1")]
    assert redeliveries and all(x["correlation_id"] == "abc" for x in redeliveries)
    assert redeliveries[0]["level"] == "warning" and redeliveries[0]["logger"] == "app.bus"
    assert all(x["correlation_id"] == "abc" for x in dead_lettered(found))
    # the failing deliveries logged the event, never the request body with the password in it
    assert PASSWORD not in captured.getvalue()


def dead_lettered(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for x in found if str(x["event"]).startswith("dead-lettered person.registered.v1")]
