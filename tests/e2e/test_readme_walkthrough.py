"""The README's walk-through, and the examples of docs/http.md and docs/security.md that continue it,
replayed: every ``$ curl`` of their console blocks sent to a fresh system, every printed answer compared
with the real one (status line and headers where shown; JSON keys, value types, and the values but for
ids, timestamps and cut tokens). How the pages are parsed and compared: tests/support/walkthrough.py;
that the comparer catches drift: tests/unit/test_walkthrough.py."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.support.asgi import running
from tests.support.server import Server
from tests.support.walkthrough import Replay, Session, sessions

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "README.md", ROOT / "docs" / "http.md", ROOT / "docs" / "security.md")


def walkthrough() -> list[Session]:
    return sessions(*PAGES, root=ROOT)


async def replay(session: Session, client: httpx.AsyncClient) -> list[str]:
    assert session.examples, "a session with no examples"
    run = Replay(client)
    problems: list[str] = []
    for example in session.examples:
        problems += await run.run(example)
    assert run.sent >= len(session.examples), "a command that sent nothing"
    return problems


@pytest.mark.slow
async def test_every_printed_answer_is_what_a_real_server_answers(tmp_path: Path) -> None:
    problems: list[str] = []
    for n, session in enumerate(walkthrough()):
        with Server(tmp_path / f"data{n}", env=session.settings) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as client:
                problems += await replay(session, client)
    assert not problems, "the pages and the server disagree:\n" + "\n".join(problems)


async def test_every_printed_answer_is_what_the_app_answers(tmp_path: Path) -> None:
    """The same replay in this process, through the ASGI app: no server process, so it runs with the
    fast tests and a drifted page fails there first."""
    problems: list[str] = []
    for n, session in enumerate(walkthrough()):
        settings = Settings.load(
            environ=session.settings, env_file=None, secrets_dir=None, data_dir=tmp_path / f"data{n}"
        )
        async with running(create_app(settings), timeout=15) as client:
            problems += await replay(session, client)
    assert not problems, "the pages and the app disagree:\n" + "\n".join(problems)
