"""Processes a topology started, told apart from whatever later holds their pid, and what they cost.

A record keeps a process's pid, its process group (each is started in a session of its own, so the
group is its pid and holds its children: nginx's workers) and its start time in clock ticks since boot
(``/proc/<pid>/stat`` field 22). A pid whose start time differs is some other process that reused the
number: ``down`` leaves it alone. Linux only (``/proc``); elsewhere a record is taken at its word.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    pid: int
    started: int | None  # clock ticks after boot; None where /proc is not there
    port: int | None = None

    @classmethod
    def of(cls, name: str, pid: int, port: int | None = None) -> Record:
        return cls(name, pid, start_ticks(pid), port)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Record:
        return cls(str(data["name"]), int(data["pid"]), data.get("started"), data.get("port"))

    def dump(self) -> dict[str, Any]:
        return asdict(self)

    def state(self) -> str:
        """``running``, ``gone`` or ``pid reused`` (another process holds the pid now)."""
        if not alive(self.pid):
            return "gone"
        if self.started is not None and start_ticks(self.pid) != self.started:
            return "pid reused"
        return "running"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the fields after the ")" that closes the command name (which may hold spaces and parentheses)
    return text.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process so far (its exited children not counted)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        # a child of this process that exited is a zombie until reaped: reap it, it is gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    fields = _stat_fields(pid)
    return fields is None or fields[0] != "Z"


def stop(records: Sequence[Record], timeout: float = 15.0) -> tuple[list[str], list[str]]:
    """SIGTERM the process group of each record that is still its own process, SIGKILL what is left
    after ``timeout``. Returns (names stopped, names left alone because their pid was reused)."""
    mine = [r for r in records if r.state() == "running"]
    reused = [r.name for r in records if r.state() == "pid reused"]
    for r in mine:
        _signal_group(r.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(r.pid) for r in mine):
        time.sleep(0.05)  # poll interval within the deadline above
    for r in mine:
        if alive(r.pid):
            _signal_group(r.pid, signal.SIGKILL)
    return [r.name for r in mine], reused


def _signal_group(pid: int, sig: int) -> None:
    try:
        # the group is the pid when it was started in a session of its own (start_new_session=True)
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def named(names: Iterable[str]) -> dict[str, list[int]]:
    """pids by command name (``/proc/<pid>/comm``), for the servers the topology did not start:
    ``nats-server``, ``postgres``, ``beam.smp`` (RabbitMQ)."""
    wanted = set(names)
    out: dict[str, list[int]] = {n: [] for n in wanted}
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in wanted:
                out[comm].append(int(entry.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return (
            (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        )
    except OSError:
        return ""


def group_members(pgid: int) -> list[int]:
    """Every process in process group ``pgid`` (nginx's master and its workers)."""
    out = []
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[2]) == pgid:
                out.append(int(entry.name))
    return out
