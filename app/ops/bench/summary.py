"""What ``python -m app bench`` found: the summary (its ``--json`` object) the report is made from."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.ops.bench.options import Config
from app.ops.bench.server import OwnServer, machine
from app.ops.bench.stats import Stats

REPO = Path(__file__).resolve().parents[3]


def invariant_summary(report: dict[str, Any], source: str) -> dict[str, Any]:
    items = report.get("invariants", [])
    return {
        "ok": bool(report.get("ok")),
        "source": source,
        "checked": len(items),
        "violations": [f"{i['name']}: {i.get('detail') or i.get('figures')}" for i in items if not i["ok"]],
        "figures": {i["name"]: i.get("figures", {}) for i in items},
    }


def summary(
    cfg: Config,
    bare: Stats,
    orders: Stats,
    settle: dict[str, Any],
    own: OwnServer | None,
    reads: Mapping[str, Stats],
) -> dict[str, Any]:
    invariants = settle.get("invariants", {"ok": False, "violations": ["not checked"]})
    server_cpu = orders.cpu.get("server_s")
    return {
        # the server's CPU seconds in the order phase over the orders answered in it
        "cpu_ms_per_order": 1000 * server_cpu / orders.done
        if server_cpu is not None and orders.done
        else None,
        "reads": {
            name: {
                "requests": r.done,
                "per_s": r.rate,
                "p50_ms": r.ms(50),
                "p95_ms": r.ms(95),
                "p99_ms": r.ms(99),
                "max_ms": float(r.hist.get_max_value()) / 1000 if r.done else 0.0,
                "ratio_to_bare": r.rate / bare.rate if bare.rate else 0.0,
                "errors": dict(r.errors),
            }
            for name, r in reads.items()
        },
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
        "rss_mib_orders_max": own.rss_orders_max_kib / 1024
        if own is not None and own.rss_orders_max_kib is not None
        else None,
        "own_server": own is not None,
        "server_exit": settle.get("server_exit"),
        "data_dir": settle.get("data_dir"),
        "base_url": cfg.base_url or (own.base_url if own else None),
        "load_average_1m": settle["load_average"],
        "cpu_by_process": settle.get("cpu_by_process"),
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        # the server ran the working tree: say when it differs from that commit
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "app")),
        "machine": machine(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()
