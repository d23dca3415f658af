"""The load loop of ``python -m app bench`` (what it does: ``app/ops/bench/options.py``): users set
up, the bare and the order phases of closed-loop clients, the drain, the invariant check."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from app.ops.bench.cpu import CpuSampler
from app.ops.bench.cpu import table as cpu_table
from app.ops.bench.options import HARD_CAP_SECONDS, Config
from app.ops.bench.report import plot, table, write_markdown
from app.ops.bench.server import BenchError, OwnServer, cpu_seconds, load_average
from app.ops.bench.stats import Stats
from app.ops.bench.summary import invariant_summary, summary
from app.ops.bench.users import Headers, User, prepare

AFFORDABLE_PRICE = 1
UNAFFORDABLE_PRICE = 1_000_000_000  # the largest price the API takes: ten times any balance here
REQUEST_TIMEOUT = 30.0
SETTLE_TIMEOUT = 30.0  # a 202 answer must settle within this, polled every SETTLE_POLL
SETTLE_POLL = 0.02


async def run(cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set up, time the bare endpoint, then the orders; check the invariants. Returns the summary
    (the ``--json`` object) and the two histograms."""
    load_before = load_average()
    data_dir = None if cfg.base_url else Path(tempfile.mkdtemp(prefix="eventcollab-bench-"))
    own = OwnServer(data_dir, cfg.clients) if data_dir else None
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    bare, orders = Stats(), Stats()
    reads = {name: Stats() for name in READS}
    settle: dict[str, Any] = {}
    cpu_by_process: dict[str, Any] | None = None
    connector = aiohttp.TCPConnector(limit=cfg.clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sampler: asyncio.Task[None] | None = None
        try:
            if own is not None:
                await own.start(session)
                sampler = asyncio.create_task(own.sample_rss())
            base = own.base_url if own else str(cfg.base_url)
            pid = own.pid if own else cfg.server_pid
            cpu = (lambda: cpu_seconds(pid)) if pid is not None else (lambda: None)
            operator = _operator(own)
            users = await prepare(session, base, cfg.clients)
            count = cfg.orders if cfg.orders is not None else None
            await _phase(
                "bare",
                cfg,
                count,
                cfg.bare_duration,
                bare,
                cpu,
                _get_step(session, base + "/health/live", bare),
            )
            if cfg.read_duration:
                for name, path in READS.items():
                    step = _get_step(session, base + path, reads[name], users)
                    await _phase(name, cfg, None, cfg.read_duration, reads[name], cpu, step)
            step = _order_step(session, base, users, cfg.unaffordable, orders)
            if own is not None:
                own.orders_begin()
            by_process = CpuSampler(cfg.cpu_of) if cfg.cpu_of is not None else None
            before = by_process.snapshot() if by_process is not None else None
            await _phase("orders", cfg, count, cfg.duration, orders, cpu, step)
            if by_process is not None and before is not None:
                cpu_by_process = by_process.report(before, orders.elapsed, orders.done)
            settle = {**await _drain(session, base, operator), "cpu_by_process": cpu_by_process}
            if own is None:
                settle["invariants"] = await _invariants_over_http(session, base, operator)
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
    settle["load_average"] = {"before": load_before, "after": load_average()}
    result = summary(cfg, bare, orders, settle, own, reads if cfg.read_duration else {})
    return result, {"createOrder": orders.hist, "GET /health/live": bare.hist}


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
    server_s = None if server0 is None or server1 is None else server1 - server0
    stats.cpu = {
        "client_pct": 100 * (time.process_time() - cpu0) / stats.elapsed,
        "server_pct": None if server_s is None else 100 * server_s / stats.elapsed,
        "server_s": server_s,
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


def _get_step(
    session: aiohttp.ClientSession, url: str, stats: Stats, users: list[User] | None = None
) -> Step:
    """One GET of ``url`` a step, timed; with ``users``, each client asks for its own login's, with its
    token (the reads), else with no parameter and no token (the bare endpoint)."""

    async def step(client: int, i: int) -> None:
        user = users[client] if users is not None else None
        params = {"login": user.login} if user is not None else None
        t0 = time.perf_counter_ns()
        try:
            async with session.get(url, params=params, headers=user.headers if user else None) as r:
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


# the reads timed beside createOrder: each client reads its own login's
READS = {"balance": "/account/", "notices": "/notice/notices/"}


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


def _operator(own: OwnServer | None) -> Headers:
    """The operator's token for /admin/*: the own server's, else the one the server at --base-url
    reads (OPERATOR_TOKEN from the environment, .env or /run/secrets, else the data dir's file)."""
    if own is not None:
        return {"Authorization": f"Bearer {own.operator_token}"}
    from app.config import Settings, SettingsError
    from app.edge.auth import known_operator_token

    try:
        token = known_operator_token(Settings.load())
    except SettingsError:
        token = None
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _drain(session: aiohttp.ClientSession, base: str, operator: Headers) -> dict[str, Any]:
    """Wait (bounded) until every outbox is handed on, so the invariants see a settled system."""
    started = time.monotonic()
    deadline = started + SETTLE_TIMEOUT
    pending = -1
    while time.monotonic() < deadline:
        async with session.get(base + "/admin/outbox", headers=operator) as r:
            modules = (await r.json())["modules"] if r.status == 200 else {}
        if r.status in (401, 403):
            print(f"bench: GET /admin/outbox answered {r.status}: {_NO_TOKEN}", file=sys.stderr)
            break
        pending = sum(int(m["pending"]) for m in modules.values())
        if r.status == 200 and pending == 0:
            break
        await asyncio.sleep(0.05)
    return {"outbox_drained": pending == 0, "drain_s": time.monotonic() - started}


_NO_TOKEN = "set OPERATOR_TOKEN (or DATA_DIR) to the server's (python -m app operator-token prints it)"


async def _invariants_over_http(
    session: aiohttp.ClientSession, base: str, operator: Headers
) -> dict[str, Any]:
    async with session.get(base + "/admin/invariants", headers=operator) as r:
        if r.status != 200:
            hint = f" ({_NO_TOKEN})" if r.status in (401, 403) else ""
            violation = f"HTTP {r.status}{hint}"
            return {"ok": False, "source": "GET /admin/invariants", "violations": [violation]}
        report = await r.json()
    return invariant_summary(report, "GET /admin/invariants")


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
    checked = invariant_summary(report, source)
    checked["ok"] = checked["ok"] and proc.returncode == 0
    return checked


def main(cfg: Config) -> int:
    """Run the benchmark; 0 when every order got its expected answer and the invariants hold."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner:
            result, hists = runner.run(run(cfg))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    if result.get("cpu_by_process"):
        print(cpu_table(result["cpu_by_process"]))
    if cfg.json_path is not None:
        cfg.json_path.parent.mkdir(parents=True, exist_ok=True)
        cfg.json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if cfg.plot_path is not None:
        plot(result, hists, cfg.plot_path)
    if cfg.markdown_path is not None:
        write_markdown(result, cfg.markdown_path, cfg.plot_path)
    errors = (
        result["errors"] or result["bare"]["errors"] or any(r["errors"] for r in result["reads"].values())
    )
    return 0 if result["invariants_ok"] and not errors else 1
