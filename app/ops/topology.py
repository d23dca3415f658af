"""The distributed topology on one machine: every module its own process (two replicas of Order and
Billing), a shared broker and PostgreSQL, and the gateway as the one base URL.

``python -m app up`` starts it in the background and returns once every process is ready;
``python -m app down`` stops it; ``python -m app status`` shows it. ``make up`` / ``make down`` call these.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# module -> ports of its replicas; the gateway prefix each serves
LAYOUT: dict[str, tuple[list[int], str]] = {
    "person": ([8101], "/person"),
    "billing": ([8111, 8112], "/account"),
    "orders": ([8121, 8122], "/order"),
    "notifications": ([8131], "/notice"),
}
DEFAULT_BUS = "nats://127.0.0.1:4222"
DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/eventcollab"


@dataclass
class Topology:
    bus_url: str = DEFAULT_BUS
    database_url: str = DEFAULT_DB
    namespace: str = "eventcollab"
    gateway_port: int = 8080
    run_dir: Path = Path(".run")
    port_offset: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    # one signing secret for every process of this topology: a token person issues must be good at
    # every replica; a fresh one per topology, so tokens of an earlier run are not
    auth_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    # one operator token for every process too, so one Prometheus scrape config reaches them all
    operator_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    broker: str = ""
    # the module processes' LOG_LEVEL: quiet unless the operator asks for more
    log_level: str = "warning"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def port(self, p: int) -> int:
        return p + self.port_offset

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "BUS_URL": self.bus_url,
            "BUS_NAMESPACE": self.namespace,
            "DATABASE_URL": self.database_url,
            "AUTH_SECRET": self.auth_secret,
            "OPERATOR_TOKEN": self.operator_token,
            "LOG_LEVEL": self.log_level,
            **self.extra_env,
        }

    def start_replica(self, module: str, port: int) -> subprocess.Popen[bytes]:
        name = f"{module}-{port}"
        log = (self.run_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--modules", module, "--port", str(port)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ensure_database(self.database_url)
        # one migration run first, so the replicas start on a ready schema (they would wait on the lock)
        subprocess.run(
            [sys.executable, "-m", "app", "migrate"], env=self.env(), check=True, capture_output=True
        )
        routes: list[str] = []
        for module, (ports, prefix) in LAYOUT.items():
            for p in ports:
                self.start_replica(module, self.port(p))
                routes += ["--route", f"{prefix}=http://127.0.0.1:{self.port(p)}"]
        log = (self.run_dir / "gateway.log").open("ab")
        self.procs["gateway"] = subprocess.Popen(
            [sys.executable, "-m", "app.ops.gateway", "--port", str(self.gateway_port), *routes],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self.run_dir / "pids.json").write_text(json.dumps({n: p.pid for n, p in self.procs.items()}))

    def wait_ready(self, timeout: float = 60.0, *, progress: bool = False) -> None:
        deadline = time.monotonic() + timeout
        urls = {
            n: f"http://127.0.0.1:{n.rsplit('-', 1)[1]}/health/ready" for n in self.procs if n != "gateway"
        }
        urls["gateway"] = self.base_url + "/health/ready"
        waiting = set(urls)
        shown = -1
        while waiting:
            for name in sorted(waiting):
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; see {self.run_dir / (name + '.log')}"
                    )
                try:
                    if httpx.get(urls[name], timeout=1, trust_env=False).status_code == 200:
                        waiting.discard(name)
                except httpx.HTTPError:
                    pass
            if progress and len(urls) - len(waiting) != shown:
                shown = len(urls) - len(waiting)
                print(f"  ready {shown}/{len(urls)}: waiting for {', '.join(sorted(waiting)) or 'nothing'}")
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"not ready within {timeout:.0f}s: {', '.join(sorted(waiting))}")
            if waiting:
                time.sleep(0.2)

    def stop(self) -> None:
        stop_pids({n: p.pid for n, p in self.procs.items()})
        self.procs.clear()


def stop_pids(pids: dict[str, int], timeout: float = 15.0) -> list[str]:
    stopped = []
    for name, pid in pids.items():
        try:
            os.kill(pid, signal.SIGTERM)
            stopped.append(name)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids.values():
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        # a child of ours that exited is a zombie until reaped
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist yet."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)

    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(admin)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{target.database}"')
        finally:
            await conn.close()

    asyncio.run(create())


def up(t: Topology) -> None:
    """Start ``t`` and wait until every process is ready, saying so as it goes; exits with a message
    when it is already up or a process fails to start (then everything started is stopped)."""
    pidfile = t.run_dir / "pids.json"
    if pidfile.exists() and any(_alive(pid) for pid in json.loads(pidfile.read_text()).values()):
        sys.exit("already up: run `python -m app down` (`make down`) first")
    print(f"starting {sum(len(p) for p, _ in LAYOUT.values())} module processes and the gateway")
    print(f"  bus {t.bus_url}\n  database {t.database_url}")
    t.start()
    try:
        t.wait_ready(progress=True)
    except RuntimeError as exc:
        t.stop()
        sys.exit(f"failed: {exc}")
    print(f"\nup: {t.base_url}  (logs in {t.run_dir}/, stop with `python -m app down`)")
    for module, (ports, prefix) in LAYOUT.items():
        print(f"  {prefix:9} -> {module:14} replicas on {', '.join(str(t.port(x)) for x in ports)}")


def down(run_dir: Path) -> str:
    """Stop the topology whose pids ``run_dir`` holds; says what it did."""
    pidfile = run_dir / "pids.json"
    pids = json.loads(pidfile.read_text()) if pidfile.exists() else {}
    stopped = stop_pids(pids)
    pidfile.unlink(missing_ok=True)
    return f"stopped {len(stopped)} processes" if stopped else "nothing was running"


def status(run_dir: Path) -> str:
    pidfile = run_dir / "pids.json"
    pids: dict[str, int] = json.loads(pidfile.read_text()) if pidfile.exists() else {}
    lines = [f"{name:22} pid {pid:<8} {'running' if _alive(pid) else 'gone'}" for name, pid in pids.items()]
    return "\n".join(lines) if pids else "not running"
