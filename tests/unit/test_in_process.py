"""tests/unit/conftest.py refuses processes and connections to every unit test: it really does."""

from __future__ import annotations

import asyncio
import socket
import subprocess

import pytest

from tests.unit.conftest import LeftTheProcess


def test_a_unit_test_cannot_start_a_process() -> None:
    with pytest.raises(LeftTheProcess):
        subprocess.run(["true"], check=False)


async def test_a_unit_test_cannot_start_a_process_from_asyncio() -> None:
    with pytest.raises(LeftTheProcess):
        await asyncio.create_subprocess_exec("true")


def test_a_unit_test_cannot_open_a_network_connection() -> None:
    with pytest.raises(LeftTheProcess):
        socket.create_connection(("127.0.0.1", 5432), timeout=0.1)
    with socket.socket() as s, pytest.raises(LeftTheProcess):
        s.connect(("127.0.0.1", 4222))
