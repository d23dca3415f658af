"""The flags of ``python -m app bench`` (what it does: :data:`DESCRIPTION`). The standard library only,
so ``python -m app bench --help`` works without the ``bench`` extra installed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# hard caps: no flag makes a phase run longer or send more than this
HARD_CAP_SECONDS = 900.0
MAX_ORDERS = 5_000_000
MAX_CLIENTS = 2048
DEFAULT_DURATION = 20.0
DESCRIPTION = (
    "A closed-loop load generator for POST /order/createOrder. Each of N clients sends an order, waits "
    "for its final answer (a 202 is followed by polling its Location until the order is paid or "
    "rejected, all counted in its latency), then sends the next. The same clients first time the bare "
    "GET /health/live of the same server, so the ratio between the two says how much of the server's "
    "capacity the order flow keeps. Without --base-url it starts its own python -m app on a free port "
    "with a fresh data directory and stops it at the end. Each client is its own user, registered with "
    "a password and logged in before the clock starts; every request after that carries its Bearer "
    "token. Between the two, the same clients read their balance and their notices (each read for "
    "--read-duration). The server's CPU seconds per order are read from /proc. At the end the "
    "invariants are checked."
)


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
    read_duration: float = 5.0
    server_pid: int | None = None
    cpu_of: Path | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help="a running system (default: start one on a free local port)")
    p.add_argument("--clients", type=int, default=64, help="concurrent closed-loop clients")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--duration", type=float, help=f"seconds of orders ({DEFAULT_DURATION:.0f} unless --orders)"
    )
    mode.add_argument("--orders", type=int, help="number of orders instead of a duration")
    p.add_argument("--unaffordable", type=float, default=0.1, help="share of orders priced over the balance")
    p.add_argument("--bare-duration", type=float, default=5.0, help="seconds of GET /health/live")
    p.add_argument(
        "--read-duration",
        type=float,
        default=5.0,
        help="seconds of each read (GET /account/, GET /notice/notices/) before the orders; 0: none",
    )
    p.add_argument(
        "--server-pid",
        type=int,
        help="with --base-url: the server's pid, whose CPU seconds per order are read from /proc",
    )
    p.add_argument("--json", type=Path, dest="json_path", help="write the figures as a JSON object here")
    p.add_argument("--markdown", type=Path, help="write a benchmark report (markdown) here")
    p.add_argument("--plot", type=Path, help="write the latency histogram (PNG) here")
    p.add_argument("--allow-remote", action="store_true", help="allow a --base-url that is not this host")
    p.add_argument("--keep-data", action="store_true", help="keep the own server's data directory")
    p.add_argument(
        "--cpu-of",
        type=Path,
        metavar="RUN_DIR",
        help="report CPU by process during the orders for the topology `python -m app up` runs from "
        "RUN_DIR (.run), and for nats-server, PostgreSQL, RabbitMQ and this bench",
    )


def config(a: argparse.Namespace, p: argparse.ArgumentParser) -> Config:
    """The run ``a`` (parsed by ``p``, which :func:`add_arguments` set up) asks for; ``p.error`` if
    a flag is out of bounds."""
    if not 1 <= a.clients <= MAX_CLIENTS:
        p.error(f"--clients must be between 1 and {MAX_CLIENTS}")
    if a.orders is not None and not 1 <= a.orders <= MAX_ORDERS:
        p.error(f"--orders must be between 1 and {MAX_ORDERS}")
    duration = DEFAULT_DURATION if a.orders is None and a.duration is None else a.duration
    for name, seconds in (("--duration", duration), ("--bare-duration", a.bare_duration)):
        if seconds is not None and not 0 < seconds <= HARD_CAP_SECONDS:
            p.error(f"{name} must be more than 0 and at most {HARD_CAP_SECONDS:.0f}")
    if not 0 <= a.read_duration <= HARD_CAP_SECONDS:
        p.error(f"--read-duration must be between 0 and {HARD_CAP_SECONDS:.0f}")
    if a.server_pid is not None and a.base_url is None:
        p.error("--server-pid is for a server of --base-url (the bench knows its own server's pid)")
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
        duration=duration,
        orders=a.orders,
        unaffordable=Fraction(a.unaffordable).limit_denominator(10_000),
        bare_duration=a.bare_duration,
        json_path=a.json_path,
        markdown_path=a.markdown,
        plot_path=a.plot,
        keep_data=a.keep_data,
        read_duration=a.read_duration,
        server_pid=a.server_pid,
        cpu_of=a.cpu_of,
    )
