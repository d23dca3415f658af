"""The unit tier runs in this process only: a test that starts a process or opens a network
connection fails here, so `make unit` keeps needing no server, no broker and no Node."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest


class LeftTheProcess(AssertionError):
    pass


def _refuse(what: str) -> Any:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        raise LeftTheProcess(f"the unit tier runs in-process: {what}{args[:2]!r} is not allowed here")

    return refused


@pytest.fixture(autouse=True)
def in_process_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(subprocess, "Popen", _refuse("subprocess.Popen"))
    monkeypatch.setattr(asyncio, "create_subprocess_exec", _refuse("asyncio.create_subprocess_exec"))
    monkeypatch.setattr(asyncio, "create_subprocess_shell", _refuse("asyncio.create_subprocess_shell"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", _refuse("socket.create_connection"))
    yield
