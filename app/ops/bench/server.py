"""The bench's own server (``python -m app`` on a free port over a fresh data directory), and what
it reads about it and the machine from ``/proc``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

READY_TIMEOUT = 30.0


class BenchError(Exception):
    """The run cannot go on (the server did not start, a user could not be set up)."""


class OwnServer:
    """``python -m app`` on a free 127.0.0.1 port over a fresh data directory; its RSS sampled."""

    def __init__(self, data_dir: Path, clients: int) -> None:
        self.data_dir = data_dir
        self.clients = clients
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.rss_max_kib = 0
        # the largest RSS since the order phase began (set up includes 2 argon2 hashes per user, each
        # a 19 MiB work area while it runs)
        self.rss_orders_max_kib: int | None = None
        self.log_path = data_dir / "server.log"
        # its /admin endpoints, which the drain polls, need it
        self.operator_token = secrets.token_urlsafe(32)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        # the data directory must be the only state: no database URL from the environment
        env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
        with open_log(self.log_path) as log:
            self.proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--data-dir", str(self.data_dir)),
                env={
                    **env,
                    "LOG_LEVEL": "warning",
                    "ACCESS_LOG": "0",
                    "OPERATOR_TOKEN": self.operator_token,
                    # every client logs in once from this one address: the default 100 a minute is for
                    # guessing passwords, not for setting up a benchmark
                    "LOGIN_RATE_PER_ADDRESS": str(max(100, 2 * self.clients)),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise BenchError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(self.base_url + "/health/ready") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise BenchError(f"server not ready within {READY_TIMEOUT:.0f}s:\n{self.log_tail()}")

    async def sample_rss(self) -> None:
        while self.proc is not None and self.proc.returncode is None:
            rss = rss_kib(self.proc.pid)
            self.rss_max_kib = max(self.rss_max_kib, rss)
            if self.rss_orders_max_kib is not None:
                self.rss_orders_max_kib = max(self.rss_orders_max_kib, rss)
            await asyncio.sleep(0.2)

    def orders_begin(self) -> None:
        self.rss_orders_max_kib = rss_kib(self.proc.pid) if self.proc is not None else 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def log_tail(self) -> str:
        return read_tail(self.log_path)


def machine() -> dict[str, Any]:
    cpuinfo = read_text(Path("/proc/cpuinfo"))
    meminfo = read_text(Path("/proc/meminfo"))
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), ""
    )
    mem_kib = next((int(ln.split()[1]) for ln in meminfo.splitlines() if ln.startswith("MemTotal:")), 0)
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_mib": mem_kib // 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load_average() -> float | None:
    # other work on the machine shares its cores with the server and this client: worth recording
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_log(path: Path) -> IO[bytes]:
    return path.open("ab")


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def read_tail(path: Path, size: int = 4000) -> str:
    return read_text(path)[-size:]


def rss_kib(pid: int) -> int:
    for line in read_text(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float | None:
    stat = read_text(Path(f"/proc/{pid}/stat"))
    if not stat:
        return None
    # fields after the ")" that closes the command name; utime and stime are the 14th and 15th
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
