"""``python -m app bench``: a closed-loop load generator for ``POST /order/createOrder``.

Each of N clients sends an order, waits for its final answer (a 202 is followed by polling its
Location until the order is paid or rejected, all counted in its latency), then sends the next. The
same clients first time the bare ``GET /health/live`` of the same server, so the ratio between the two
says how much of the server's capacity the order flow keeps. Without ``--base-url`` it starts its own
``python -m app`` on a free port with a fresh data directory and stops it at the end. Each client is
its own user, registered with a password and logged in before the clock starts; every request after
that carries its Bearer token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit
from uuid import uuid4

import aiohttp
import orjson
from hdrh.histogram import HdrHistogram

from app.ops.bench.report import plot, table, write_markdown

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# hard caps: no flag makes a phase run longer or send more than this
HARD_CAP_SECONDS = 900.0
MAX_ORDERS = 5_000_000
MAX_CLIENTS = 2048
LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3
DEPOSIT = 100_000_000  # per account; affordable orders cost 1, so no capped run can spend it
AFFORDABLE_PRICE = 1
UNAFFORDABLE_PRICE = 1_000_000_000  # the largest price the API takes: ten times any balance here
REQUEST_TIMEOUT = 30.0
SETTLE_TIMEOUT = 30.0  # a 202 answer must settle within this, polled every SETTLE_POLL
SETTLE_POLL = 0.02
READY_TIMEOUT = 30.0
LOGIN_WAIT_CAP = 120.0  # a rate-limited login is retried after its Retry-After, for at most this long
JSON_HEADERS = {"Content-Type": "application/json"}
Headers = dict[str, str]
REPO = Path(__file__).resolve().parents[3]


class BenchError(Exception):
    """The run cannot go on (the server did not start, a user could not be set up)."""


@dataclass(frozen=True, slots=True)
class Config:
    base_url: str | None
    clients: int
    duration: float | None
    orders: int | None
    unaffordable: Fraction
    bare_duration: float
    json_path: Path | None
    markdown_path: Path | None
    plot_path: Path | None
    keep_data: bool


def parse(argv: list[str]) -> Config:
    p = argparse.ArgumentParser(prog="python -m app bench", description=__doc__)
    p.add_argument("--base-url", help="a running system (default: start one on a free local port)")
    p.add_argument("--clients", type=int, default=64, help="concurrent closed-loop clients (default 64)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--duration", type=float, help="seconds of orders (default 20)")
    mode.add_argument("--orders", type=int, help="number of orders instead of a duration")
    p.add_argument("--unaffordable", type=float, default=0.1, help="share of orders priced over the balance")
    p.add_argument("--bare-duration", type=float, default=5.0, help="seconds of GET /health/live (default 5)")
    p.add_argument("--json", type=Path, dest="json_path", help="write the figures as a JSON object here")
    p.add_argument("--markdown", type=Path, help="write a benchmark report (markdown) here")
    p.add_argument("--plot", type=Path, help="write the latency histogram (PNG) here")
    p.add_argument("--allow-remote", action="store_true", help="allow a --base-url that is not this host")
    p.add_argument("--keep-data", action="store_true", help="keep the own server's data directory")
    a = p.parse_args(argv)
    if not 1 <= a.clients <= MAX_CLIENTS:
        p.error(f"--clients must be between 1 and {MAX_CLIENTS}")
    if a.orders is not None and not 1 <= a.orders <= MAX_ORDERS:
        p.error(f"--orders must be between 1 and {MAX_ORDERS}")
    if a.orders is None and a.duration is None:
        a.duration = 20.0
    for name, seconds in (("--duration", a.duration), ("--bare-duration", a.bare_duration)):
        if seconds is not None and not 0 < seconds <= HARD_CAP_SECONDS:
            p.error(f"{name} must be more than 0 and at most {HARD_CAP_SECONDS:.0f}")
    if not 0 <= a.unaffordable <= 1:
        p.error("--unaffordable must be between 0 and 1")
    if a.base_url is not None:
        url = urlsplit(a.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            p.error(f"--base-url {a.base_url!r} is not an http(s) URL")
        if url.hostname not in LOCAL_HOSTS and not a.allow_remote:
            p.error(f"refusing to load {url.hostname}: only 127.0.0.1/localhost unless --allow-remote")
    return Config(
        base_url=a.base_url.rstrip("/") if a.base_url else None,
        clients=a.clients,
        duration=a.duration,
        orders=a.orders,
        unaffordable=Fraction(a.unaffordable).limit_denominator(10_000),
        bare_duration=a.bare_duration,
        json_path=a.json_path,
        markdown_path=a.markdown,
        plot_path=a.plot,
        keep_data=a.keep_data,
    )


@dataclass
class Stats:
    """Latencies (µs, HDR) of the requests that got their final answer, and what went wrong."""

    hist: Any = field(default_factory=lambda: HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS))
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    started: int = 0
    done: int = 0
    elapsed: float = 0.0
    cpu: dict[str, float | None] = field(default_factory=dict)
    per_second: list[int] = field(default_factory=list)  # answers in each whole second of the phase

    def record(self, started_ns: int) -> None:
        micros = (time.perf_counter_ns() - started_ns) // 1000
        self.hist.record_value(max(LOWEST_US, min(HIGHEST_US, micros)))
        self.done += 1

    def ms(self, percentile: float) -> float:
        return float(self.hist.get_value_at_percentile(percentile)) / 1000 if self.done else 0.0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


class OwnServer:
    """``python -m app`` on a free 127.0.0.1 port over a fresh data directory; its RSS sampled."""

    def __init__(self, data_dir: Path, clients: int) -> None:
        self.data_dir = data_dir
        self.clients = clients
        self.port = _free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.rss_max_kib = 0
        self.log_path = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        # the data directory must be the only state: no database URL from the environment
        env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
        with _open_log(self.log_path) as log:
            self.proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--data-dir", str(self.data_dir)),
                env={
                    **env,
                    "LOG_LEVEL": "warning",
                    "ACCESS_LOG": "0",
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
            self.rss_max_kib = max(self.rss_max_kib, _rss_kib(self.proc.pid))
            await asyncio.sleep(0.2)

    def cpu_seconds(self) -> float | None:
        return _cpu_seconds(self.proc.pid) if self.proc is not None else None

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
        return _read_tail(self.log_path)


async def run(cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set up, time the bare endpoint, then the orders; check the invariants. Returns the summary
    (the ``--json`` object) and the two histograms."""
    load_before = _load_average()
    data_dir = None if cfg.base_url else Path(tempfile.mkdtemp(prefix="eventcollab-bench-"))
    own = OwnServer(data_dir, cfg.clients) if data_dir else None
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    bare, orders = Stats(), Stats()
    settle: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=cfg.clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sampler: asyncio.Task[None] | None = None
        try:
            if own is not None:
                await own.start(session)
                sampler = asyncio.create_task(own.sample_rss())
            base = own.base_url if own else str(cfg.base_url)
            cpu = own.cpu_seconds if own else lambda: None
            users = await _prepare(session, base, cfg.clients)
            count = cfg.orders if cfg.orders is not None else None
            await _phase("bare", cfg, count, cfg.bare_duration, bare, cpu, _bare_step(session, base, bare))
            step = _order_step(session, base, users, cfg.unaffordable, orders)
            await _phase("orders", cfg, count, cfg.duration, orders, cpu, step)
            settle = await _drain(session, base)
            if own is None:
                settle["invariants"] = await _invariants_over_http(session, base)
        finally:
            if sampler is not None:
                sampler.cancel()
            if own is not None:
                settle["server_exit"] = await own.stop()
    if own is not None and data_dir is not None:
        settle["invariants"] = await _invariants_by_check(data_dir)
        if not settle["invariants"]["ok"] or cfg.keep_data:
            settle["data_dir"] = str(data_dir)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    settle["load_average"] = {"before": load_before, "after": _load_average()}
    summary = _summary(cfg, bare, orders, settle, own)
    return summary, {"createOrder": orders.hist, "GET /health/live": bare.hist}


@dataclass(frozen=True, slots=True)
class User:
    login: str
    headers: Headers  # JSON content type and the Bearer token


async def _prepare(session: aiohttp.ClientSession, base: str, clients: int) -> list[User]:
    """One user per client: registered, logged in, its account open (polled), and a deposit no run
    can spend."""
    run_id = uuid4().hex[:8]
    password = secrets.token_urlsafe(18)  # one per run: the users live only as long as the run cares
    logins = [f"bench-{run_id}-{i:04d}" for i in range(clients)]
    started = time.monotonic()

    async def one(login: str) -> User:
        body = {"login": login, "email": f"{login}@bench.example", "password": password}
        await _expect_ok(session, "POST", base + "/person/register", body)
        headers = {**JSON_HEADERS, "Authorization": f"Bearer {await _log_in(session, base, login, password)}"}
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            async with session.get(base + "/account/", params={"login": login}, headers=headers) as r:
                await r.read()
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"no account for {login} after {READY_TIMEOUT:.0f}s")
            await asyncio.sleep(0.02)
        deposit = {"login": login, "operation": "deposit", "sum": DEPOSIT}
        await _expect_ok(session, "PUT", base + "/account/operation", deposit, headers)
        return User(login, headers)

    users = await asyncio.gather(*(one(login) for login in logins))
    took = time.monotonic() - started
    print(f"{clients} users registered, logged in, accounts open and funded in {took:.2f}s")
    return list(users)


async def _log_in(session: aiohttp.ClientSession, base: str, login: str, password: str) -> str:
    """The user's access token. A 429 (a server with its default login limits) is waited out as its
    Retry-After says, for at most LOGIN_WAIT_CAP seconds in all."""
    url = base + "/person/login"
    body = orjson.dumps({"login": login, "password": password})
    deadline = time.monotonic() + LOGIN_WAIT_CAP
    while True:
        async with session.post(url, data=body, headers=JSON_HEADERS) as r:
            raw, status, retry_after = await r.read(), r.status, r.headers.get("Retry-After", "1")
        if status == 200:
            token: str = orjson.loads(raw)["accessToken"]
            return token
        wait = float(retry_after) if retry_after.isdigit() else 1.0
        if status != 429 or time.monotonic() + wait > deadline:
            hint = (
                " (raise the server's LOGIN_RATE_PER_ADDRESS for this many clients)" if status == 429 else ""
            )
            raise BenchError(f"POST {url} answered {status}{hint}: {raw[:300].decode(errors='replace')}")
        await asyncio.sleep(wait)


async def _expect_ok(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: dict[str, Any],
    headers: Headers = JSON_HEADERS,
) -> None:
    async with session.request(method, url, data=orjson.dumps(body), headers=headers) as r:
        text = await r.text()
        if r.status != 200:
            raise BenchError(f"{method} {url} answered {r.status}: {text[:300]}")


Step = Callable[[int, int], Awaitable[None]]


async def _phase(
    label: str,
    cfg: Config,
    count: int | None,
    seconds: float | None,
    stats: Stats,
    server_cpu: Callable[[], float | None],
    step: Step,
) -> None:
    """Run ``step(client, i)`` back to back in every client until ``count`` steps have started or
    ``seconds`` have passed (the hard cap when counting); steps in flight at the end still finish."""
    seq = itertools.count()
    start = time.monotonic()
    stop_at = start + (seconds if count is None and seconds else HARD_CAP_SECONDS)

    async def client(c: int) -> None:
        while time.monotonic() < stop_at:
            i = next(seq)
            if count is not None and i >= count:
                return
            stats.started += 1
            await step(c, i)

    cpu0, server0 = time.process_time(), server_cpu()
    ticker = asyncio.create_task(_progress(label, stats, start))
    try:
        await asyncio.gather(*(client(c) for c in range(cfg.clients)))
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    stats.elapsed = time.monotonic() - start
    server1 = server_cpu()
    stats.cpu = {
        "client_pct": 100 * (time.process_time() - cpu0) / stats.elapsed,
        "server_pct": None
        if server0 is None or server1 is None
        else 100 * (server1 - server0) / stats.elapsed,
    }
    _progress_line(label, stats, start, stats.done / stats.elapsed, final=True)


async def _progress(label: str, stats: Stats, start: float) -> None:
    last, last_t = 0, start
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        stats.per_second.append(stats.done - last)
        _progress_line(label, stats, start, (stats.done - last) / (now - last_t), final=False)
        last, last_t = stats.done, now


def _progress_line(label: str, stats: Stats, start: float, rate: float, *, final: bool) -> None:
    tty = sys.stdout.isatty()
    errors = sum(stats.errors.values())
    line = (
        f"{label:>6} {time.monotonic() - start:6.1f}s  done {stats.done:>8}  {rate:8.1f}/s  errors {errors}"
    )
    if tty:
        print("\r" + line, end="\n" if final else "", flush=True)
    else:
        print(line, flush=True)


def _bare_step(session: aiohttp.ClientSession, base: str, stats: Stats) -> Step:
    url = base + "/health/live"

    async def step(client: int, i: int) -> None:
        t0 = time.perf_counter_ns()
        try:
            async with session.get(url) as r:
                await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.errors[type(exc).__name__] += 1
            return
        if status != 200:
            stats.errors[str(status)] += 1
            return
        stats.record(t0)

    return step


class _Failed(Exception):
    """One order's failure, named by what the error table counts."""


def _order_step(
    session: aiohttp.ClientSession, base: str, users: list[User], unaffordable: Fraction, stats: Stats
) -> Step:
    url = base + "/order/createOrder"

    async def step(client: int, i: int) -> None:
        # order i is unaffordable when the running share crosses an integer: exact, spread evenly
        broke = int((i + 1) * unaffordable) > int(i * unaffordable)
        expected = "rejected" if broke else "paid"
        user = users[client]
        body = orjson.dumps({"login": user.login, "price": UNAFFORDABLE_PRICE if broke else AFFORDABLE_PRICE})
        t0 = time.perf_counter_ns()
        try:
            async with session.post(url, data=body, headers=user.headers) as r:
                raw, status, location = await r.read(), r.status, r.headers.get("Location")
            if status == 202:
                stats.outcomes["answered_202"] += 1
                order = await _settle(session, base, location, user.headers)
            elif status == 200:
                order = orjson.loads(raw)
            else:
                raise _Failed(str(status))
            if order.get("status") != expected:
                raise _Failed(f"{order.get('status')}_not_{expected}")
        except _Failed as failed:
            stats.errors[str(failed)] += 1
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.errors[type(exc).__name__] += 1
            return
        stats.record(t0)
        stats.outcomes[expected] += 1

    return step


async def _settle(
    session: aiohttp.ClientSession, base: str, location: str | None, headers: Headers
) -> dict[str, Any]:
    if not location:
        raise _Failed("202_without_location")
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        async with session.get(base + location, headers=headers) as r:
            raw, status = await r.read(), r.status
        if status != 200:
            raise _Failed(f"poll_{status}")
        order: dict[str, Any] = orjson.loads(raw)
        if order.get("status") != "pending":
            return order
        await asyncio.sleep(SETTLE_POLL)
    raise _Failed("still_pending")


async def _drain(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Wait (bounded) until every outbox is handed on, so the invariants see a settled system."""
    started = time.monotonic()
    deadline = started + SETTLE_TIMEOUT
    pending = -1
    while time.monotonic() < deadline:
        async with session.get(base + "/admin/outbox") as r:
            modules = (await r.json())["modules"] if r.status == 200 else {}
        pending = sum(int(m["pending"]) for m in modules.values())
        if r.status == 200 and pending == 0:
            break
        await asyncio.sleep(0.05)
    return {"outbox_drained": pending == 0, "drain_s": time.monotonic() - started}


async def _invariants_over_http(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(base + "/admin/invariants") as r:
        if r.status != 200:
            return {"ok": False, "source": "GET /admin/invariants", "violations": [f"HTTP {r.status}"]}
        report = await r.json()
    return _invariant_summary(report, "GET /admin/invariants")


async def _invariants_by_check(data_dir: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "app", "check", "--data-dir", str(data_dir), "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    source = "python -m app check"
    try:
        report = orjson.loads(out)
    except orjson.JSONDecodeError:
        return {
            "ok": False,
            "source": source,
            "violations": [f"exit {proc.returncode}: {err.decode()[-300:]}"],
        }
    summary = _invariant_summary(report, source)
    summary["ok"] = summary["ok"] and proc.returncode == 0
    return summary


def _invariant_summary(report: dict[str, Any], source: str) -> dict[str, Any]:
    items = report.get("invariants", [])
    return {
        "ok": bool(report.get("ok")),
        "source": source,
        "checked": len(items),
        "violations": [f"{i['name']}: {i.get('detail') or i.get('figures')}" for i in items if not i["ok"]],
        "figures": {i["name"]: i.get("figures", {}) for i in items},
    }


def _summary(
    cfg: Config, bare: Stats, orders: Stats, settle: dict[str, Any], own: OwnServer | None
) -> dict[str, Any]:
    invariants = settle.get("invariants", {"ok": False, "violations": ["not checked"]})
    return {
        "orders_per_s": orders.rate,
        "p50_ms": orders.ms(50),
        "p95_ms": orders.ms(95),
        "p99_ms": orders.ms(99),
        "max_ms": float(orders.hist.get_max_value()) / 1000 if orders.done else 0.0,
        "bare_req_per_s": bare.rate,
        "ratio_to_bare": orders.rate / bare.rate if bare.rate else 0.0,
        "errors": dict(orders.errors),
        "invariants_ok": bool(invariants["ok"]),
        "clients": cfg.clients,
        "orders": orders.done,
        "orders_sent": orders.started,
        "paid": orders.outcomes["paid"],
        "rejected": orders.outcomes["rejected"],
        "answered_202": orders.outcomes["answered_202"],
        "unaffordable": float(cfg.unaffordable),
        "duration_s": cfg.duration if cfg.orders is None else None,
        "orders_requested": cfg.orders,
        "elapsed_s": orders.elapsed,
        "capped": cfg.orders is not None and orders.started < cfg.orders,
        "cpu": orders.cpu,
        "per_second": orders.per_second,
        "bare": {
            "path": "/health/live",
            "requests": bare.done,
            "elapsed_s": bare.elapsed,
            "p50_ms": bare.ms(50),
            "p95_ms": bare.ms(95),
            "p99_ms": bare.ms(99),
            "max_ms": float(bare.hist.get_max_value()) / 1000 if bare.done else 0.0,
            "errors": dict(bare.errors),
            "cpu": bare.cpu,
        },
        "invariants": invariants,
        "outbox_drained": settle.get("outbox_drained"),
        "drain_s": settle.get("drain_s"),
        "rss_mib_max": own.rss_max_kib / 1024 if own is not None else None,
        "own_server": own is not None,
        "server_exit": settle.get("server_exit"),
        "data_dir": settle.get("data_dir"),
        "base_url": cfg.base_url or (own.base_url if own else None),
        "load_average_1m": settle["load_average"],
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        # the server ran the working tree: say when it differs from that commit
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "app")),
        "machine": machine(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def machine() -> dict[str, Any]:
    cpuinfo = _read_text(Path("/proc/cpuinfo"))
    meminfo = _read_text(Path("/proc/meminfo"))
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


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def _load_average() -> float | None:
    # other work on the machine shares its cores with the server and this client: worth recording
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _open_log(path: Path) -> IO[bytes]:
    return path.open("ab")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _read_tail(path: Path, size: int = 4000) -> str:
    return _read_text(path)[-size:]


def _rss_kib(pid: int) -> int:
    for line in _read_text(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float | None:
    stat = _read_text(Path(f"/proc/{pid}/stat"))
    if not stat:
        return None
    # fields after the ")" that closes the command name; utime and stime are the 14th and 15th
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    """Run the benchmark; 0 when every order got its expected answer and the invariants hold."""
    cfg = parse(argv)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner:
            summary, hists = runner.run(run(cfg))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(table(summary))
    if cfg.json_path is not None:
        cfg.json_path.parent.mkdir(parents=True, exist_ok=True)
        cfg.json_path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if cfg.plot_path is not None:
        plot(summary, hists, cfg.plot_path)
    if cfg.markdown_path is not None:
        write_markdown(summary, cfg.markdown_path, cfg.plot_path)
    return 0 if summary["invariants_ok"] and not summary["errors"] and not summary["bare"]["errors"] else 1
