"""The distributed topology on one machine: every module its own process (two replicas of Order and
Billing by default), a console process for the docs and the operator endpoints, a shared broker and
PostgreSQL, and nginx in front as the one base URL (``app/ops/nginx.py`` writes its config from the
same layout).

``python -m app up`` starts it in the background and returns once every process is ready;
``python -m app down`` stops what it started (``--wipe``: and drops its database and broker
namespace); ``python -m app status`` says what runs. ``make up`` / ``make down`` call these.

Ports: nginx on ``UP_PORT`` (8080), the processes on the ports after it, so ``UP_PORT=9080`` moves the
whole topology and two checkouts can run theirs side by side. The broker namespace and the database
are this run directory's own (``ec_<checkout>_<hash of the path>``) unless ``BUS_NAMESPACE`` /
``DATABASE_URL`` say otherwise: no run attaches to what another checkout left in a shared broker.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.config import MODULES
from app.ops import nginx, processes, resources
from app.ops.settings_kinds import NATS_SCHEMES

# module -> (replicas by default, the path prefixes it serves at the front)
LAYOUT: dict[str, tuple[int, tuple[str, ...]]] = {
    "person": (1, ("/person",)),
    "billing": (2, ("/account",)),
    "orders": (2, ("/order",)),
    "notifications": (1, ("/notice",)),
}
CONSOLE = "console"  # every module's routes, CONSUME=0: /, /docs, /openapi.json, /flows, /admin/*
FRONT = "nginx"
DEFAULT_BUS = "nats://127.0.0.1:4222"
PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
STATE = "topology.json"
# createOrder holds its request up to ORDER_REPLY_TIMEOUT before its 202: nginx must wait longer
READ_TIMEOUT_MARGIN = 10.0


class TopologyError(RuntimeError):
    """The topology cannot start (or stop) as asked; the message says why and what to do."""


def own_name(run_dir: Path) -> str:
    """``ec_<checkout folder>_<8 hex of the run directory's path>``: a name no other checkout shares,
    valid as a PostgreSQL database, a NATS stream and a RabbitMQ prefix."""
    where = run_dir.resolve()
    digest = hashlib.sha256(str(where).encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "_", where.parent.name.lower()).strip("_")[:24] or "root"
    return f"ec_{slug}_{digest}"


@dataclass
class Topology:
    bus_url: str = DEFAULT_BUS
    database_url: str = ""  # empty: PG_SERVER/<own name>
    namespace: str = ""  # empty: the own name
    port: int = 8080  # nginx; the processes take the ports after it
    run_dir: Path = Path(".run")
    replicas: dict[str, int] = field(default_factory=dict)  # module -> count, over LAYOUT's
    extra_env: dict[str, str] = field(default_factory=dict)
    # one signing secret for every process of this topology: a token person issues must be good at
    # every replica; a fresh one per topology, so tokens of an earlier run are not
    auth_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    # one operator token for every process too, so one Prometheus scrape config reaches them all
    operator_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    broker: str = ""
    # the module processes' LOG_LEVEL: quiet unless the operator asks for more
    log_level: str = "warning"
    order_reply_timeout: float = 5.0
    front_workers: int = 1
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    records: dict[str, processes.Record] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.owns_database = not self.database_url
        self.owns_namespace = not self.namespace
        self.database_url = self.database_url or f"{PG_SERVER}/{own_name(self.run_dir)}"
        self.namespace = self.namespace or own_name(self.run_dir)
        unknown = set(self.replicas) - set(LAYOUT)
        if unknown:
            raise TopologyError(f"no module {', '.join(sorted(unknown))} in the layout")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ports(self) -> dict[str, list[int]]:
        """module (and the console) -> the ports of its processes, counted on from ``port``."""
        out: dict[str, list[int]] = {}
        nxt = self.port + 1
        for module, (default, _) in LAYOUT.items():
            n = self.replicas.get(module, default)
            out[module] = list(range(nxt, nxt + n))
            nxt += n
        out[CONSOLE] = [nxt]
        return out

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "BUS_URL": self.bus_url,
            "BUS_NAMESPACE": self.namespace,
            "DATABASE_URL": self.database_url,
            "AUTH_SECRET": self.auth_secret,
            "OPERATOR_TOKEN": self.operator_token,
            "LOG_LEVEL": self.log_level,
            "ORDER_REPLY_TIMEOUT": f"{self.order_reply_timeout:g}",
            # nginx is the peer every process sees: its X-Forwarded-For is believed, nobody else's
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
            # the modules send their flows' hops to the console, so /flows at the front shows whole flows
            # (over NATS only: with RabbitMQ the front's /flows has the console's own hops, none)
            **({"FLOWS_FEED": "1"} if self.bus_url.startswith(NATS_SCHEMES) else {}),
            **self.extra_env,
            **more,
        }

    def _spawn(self, name: str, argv: list[str], port: int, env: Mapping[str, str]) -> None:
        with (self.run_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name] = proc
        self.records[name] = processes.Record.of(name, proc.pid, port)
        self.save()

    def start_replica(self, module: str, port: int) -> None:
        argv = [sys.executable, "-m", "app", "--modules", module, "--host", "127.0.0.1", "--port", str(port)]
        self._spawn(f"{module}-{port}", argv, port, self.env())

    def start_console(self) -> None:
        [port] = self.ports[CONSOLE]
        argv = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
        self._spawn(f"{CONSOLE}-{port}", argv, port, self.env(CONSUME="0", MODULES=",".join(MODULES)))

    def nginx_conf(self) -> str:
        return nginx.render(
            port=self.port,
            upstreams=[
                nginx.Upstream(name, tuple(ports), LAYOUT[name][1] if name in LAYOUT else ())
                for name, ports in self.ports.items()
            ],
            run_dir=self.run_dir,
            read_timeout=self.order_reply_timeout + READ_TIMEOUT_MARGIN,
            workers=self.front_workers,
        )

    def start_front(self) -> None:
        try:
            argv = nginx.command(self.nginx_conf(), self.run_dir)
        except nginx.FrontError as exc:
            raise TopologyError(str(exc)) from None
        self._spawn(FRONT, argv, self.port, os.environ)

    def migrate(self) -> None:
        """One migration run first, so the replicas start on a ready schema (they would wait on the
        lock); its own output when it fails, not a CalledProcessError."""
        done = subprocess.run(
            [sys.executable, "-m", "app", "migrate"], env=self.env(), capture_output=True, text=True
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            raise TopologyError(
                f"`python -m app migrate` failed (exit {done.returncode}) on {self.database_url}:\n"
                + "\n".join(output[-25:])
            )

    def check_ports(self) -> None:
        for port in [self.port, *(p for ports in self.ports.values() for p in ports)]:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    raise TopologyError(
                        f"port {port} is taken: another topology or server holds it "
                        f"(UP_PORT={self.port + 1000} moves the whole topology)"
                    ) from None

    def start(self) -> None:
        """Start every process; on any failure stop what was started and raise."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.check_ports()
            try:
                resources.ensure_database(self.database_url)
            except ConnectionError as exc:
                raise TopologyError(str(exc)) from None
            self.migrate()
            for module, ports in self.ports.items():
                if module != CONSOLE:
                    for p in ports:
                        self.start_replica(module, p)
            self.start_console()
            self.start_front()
        except BaseException:
            self.stop()
            raise

    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{r.port}/health/ready" for name, r in self.records.items() if r.port}

    def wait_ready(self, timeout: float = 60.0, *, progress: bool = False) -> None:
        deadline = time.monotonic() + timeout
        urls = self.urls()
        waiting = set(urls)
        shown = -1
        while waiting:
            for name in sorted(waiting):
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is not None:
                    log = self.run_dir / ("nginx-error.log" if name == FRONT else name + ".log")
                    tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log.exists() else []
                    raise TopologyError(
                        f"{name} exited with {proc.returncode}; the end of {log}:\n" + "\n".join(tail)
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
                raise TopologyError(f"not ready within {timeout:.0f}s: {', '.join(sorted(waiting))}")
            if waiting:
                time.sleep(0.2)  # poll interval within the deadline above

    def stop(self) -> list[str]:
        # the front first: it stops taking requests while the modules finish theirs
        order = sorted(self.records.values(), key=lambda r: r.name != FRONT)
        stopped, _ = processes.stop(order)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.wait(5)
        self.procs.clear()
        self.records.clear()
        self.save()
        return stopped

    def describe(self) -> dict[str, Any]:
        return {
            "front": self.base_url,
            "bus_url": self.bus_url,
            "namespace": self.namespace,
            "database_url": self.database_url,
            "owns_database": self.owns_database,
            "owns_namespace": self.owns_namespace,
            "processes": [r.dump() for r in self.records.values()],
        }

    def save(self) -> None:
        """``topology.json``: what runs (empty once stopped) and what it used, for down and status."""
        if self.run_dir.is_dir():
            path = self.run_dir / STATE
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.describe(), indent=2))
            tmp.replace(path)


def load_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    legacy = run_dir / "pids.json"  # an older `up` wrote bare pids: checked by command line instead
    if legacy.exists():
        pids = json.loads(legacy.read_text())
        records = [
            processes.Record(
                n, int(p), processes.start_ticks(int(p)) if _ours_by_cmdline(int(p)) else -1
            ).dump()
            for n, p in pids.items()
        ]
        return {"processes": records, "legacy": True}
    return None


def _ours_by_cmdline(pid: int) -> bool:
    try:
        argv = (processes.PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"-m" in argv and (b"app" in argv or b"app.ops.gateway" in argv)


def records_of(state: Mapping[str, Any] | None) -> list[processes.Record]:
    return [processes.Record.load(p) for p in (state or {}).get("processes", [])]


def up(t: Topology) -> None:
    """Start ``t`` and wait until every process is ready, saying so as it goes; exits with a message
    when it is already up or a process fails to start (then everything started is stopped)."""
    running = [r for r in records_of(load_state(t.run_dir)) if r.state() == "running"]
    if running:
        sys.exit(
            f"already up ({len(running)} processes, see `python -m app status`): "
            "run `python -m app down` (`make down`) first"
        )
    (t.run_dir / "pids.json").unlink(missing_ok=True)
    n = sum(len(p) for p in t.ports.values())
    print(f"starting {n} processes ({n - 1} module replicas and the console) and nginx in front")
    print(f"  bus {t.bus_url} (namespace {t.namespace})\n  database {t.database_url}")
    try:
        t.start()
        t.wait_ready(progress=True)
    except (TopologyError, KeyboardInterrupt) as exc:
        t.stop()
        sys.exit(f"failed: {exc}" if isinstance(exc, TopologyError) else "interrupted: stopped it again")
    print(f"\nup: {t.base_url}  (nginx; logs in {t.run_dir}/, stop with `make down` or `python -m app down`)")
    for module, ports in t.ports.items():
        prefixes = ", ".join(LAYOUT[module][1]) if module in LAYOUT else "everything else"
        print(f"  {prefixes:16} -> {module:14} on {', '.join(map(str, ports))}")


def down(run_dir: Path, *, wipe: bool = False) -> str:
    """Stop the processes ``run_dir``'s topology started (and, with ``wipe``, drop its own database
    and broker namespace); says what it did."""
    state = load_state(run_dir)
    stopped, reused = processes.stop(records_of(state))
    lines = [f"stopped {len(stopped)} processes" if stopped else "nothing was running"]
    if reused:
        lines.append(f"left alone (their pid now belongs to another process): {', '.join(reused)}")
    (run_dir / "pids.json").unlink(missing_ok=True)
    if state is not None and not state.get("legacy"):
        state["processes"] = []
        (run_dir / STATE).write_text(json.dumps(state, indent=2))
    if wipe:
        lines += _wipe(state or {}, run_dir)
    return "\n".join(lines)


def _wipe(state: Mapping[str, Any], run_dir: Path) -> list[str]:
    out = []
    db = state.get("database_url") or f"{PG_SERVER}/{own_name(run_dir)}"
    if state.get("owns_database", True):
        out.append(resources.drop_database(db))
    else:
        out.append(f"kept {db}: given by DATABASE_URL, not this checkout's own")
    ns = state.get("namespace") or own_name(run_dir)
    if state.get("owns_namespace", True):
        out.append(resources.drop_namespace(state.get("bus_url") or DEFAULT_BUS, ns))
    else:
        out.append(f"kept namespace {ns}: given by BUS_NAMESPACE, not this checkout's own")
    return out


def status(run_dir: Path) -> str:
    state = load_state(run_dir)
    records = records_of(state)
    if not records:
        last = (
            f" (last: {state['front']}, database {state['database_url']})"
            if state and "front" in state
            else ""
        )
        return "not running" + last
    lines = []
    if state and "front" in state:
        lines.append(f"front {state['front']}  bus {state['bus_url']} ({state['namespace']})")
        lines.append(f"database {state['database_url']}")
    for r in records:
        st = r.state()
        ready = ""
        if st == "running" and r.port:
            try:
                code = httpx.get(f"http://127.0.0.1:{r.port}/health/ready", timeout=1, trust_env=False)
                ready = "ready" if code.status_code == 200 else f"not ready ({code.status_code})"
            except httpx.HTTPError as exc:
                ready = f"not answering ({type(exc).__name__})"
        port = f"port {r.port}" if r.port else ""
        lines.append(f"{r.name:22} pid {r.pid:<8} {port:11} {st:10} {ready}")
    return "\n".join(lines)
