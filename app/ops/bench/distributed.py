"""The distributed benchmark (``make bench-up``): for each layout asked for, a fresh topology of its own
(its own run directory, ports, database and broker namespace) behind nginx, ``python -m app bench
--cpu-of`` run against it several times, then the medians: orders/s, p50/p99, and CPU per order by
process, with the load average of each run (others' work on the machine moves every figure).

    python -m app.ops.bench.distributed --runs 3 --duration 15 --clients 64 \\
        --layout "" --layout orders=3,billing=3 --markdown docs/bench-distributed.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.ops import resources, topology
from app.ops.settings_kinds import replicas_of

DEFAULT_LAYOUTS = ("",)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m app.ops.bench.distributed", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--runs", type=int, default=3, help="bench runs per layout (medians are reported)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of orders per run")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument(
        "--layout",
        action="append",
        help="replicas over the default layout, e.g. orders=3,billing=3 ('' = the default); repeatable",
    )
    p.add_argument("--bus-url", default=topology.DEFAULT_BUS)
    p.add_argument("--port", type=int, default=18080, help="base port of the topologies (nginx)")
    p.add_argument("--markdown", type=Path, help="write the table here too")
    p.add_argument("--json", type=Path, dest="json_path", help="write every run's figures here")
    a = p.parse_args(argv)
    if not 1 <= a.runs <= 10 or not 0 < a.duration <= 300:
        p.error("--runs from 1 to 10, --duration up to 300 s")
    for layout in a.layout or ():
        try:
            replicas_of(layout)
        except ValueError as exc:
            p.error(f"--layout {layout!r}: {exc}")
    return a


def run_layout(a: argparse.Namespace, layout: str, index: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"eventcollab-bench-{index}-"))
    t = topology.Topology(
        bus_url=a.bus_url,
        port=a.port + 100 * index,
        run_dir=run_dir,
        replicas=replicas_of(layout),
        # every client logs in once, from this one address
        extra_env={"LOGIN_RATE_PER_ADDRESS": str(max(100, 2 * a.clients))},
    )
    name = layout or "default (person 1, billing 2, orders 2, notifications 1)"
    print(f"\n== layout {name}: {sum(len(p) for p in t.ports.values())} processes, {t.base_url}", flush=True)
    runs: list[dict[str, Any]] = []
    try:
        t.start()
        t.wait_ready(progress=True)
        for i in range(a.runs):
            out = run_dir / f"run-{i}.json"
            print(f"-- run {i + 1}/{a.runs}", flush=True)
            done = subprocess.run(
                [
                    *(sys.executable, "-m", "app", "bench", "--base-url", t.base_url),
                    *("--duration", str(a.duration), "--clients", str(a.clients)),
                    *("--cpu-of", str(run_dir), "--json", str(out)),
                ],
                check=False,
            )
            if out.exists():
                result = json.loads(out.read_text())
                result["exit"] = done.returncode
                runs.append(result)
    finally:
        t.stop()
        print(resources.drop_database(t.database_url))
        print(resources.drop_namespace(t.bus_url, t.namespace))
    return {"layout": name, "processes": {m: len(p) for m, p in t.ports.items()}, "runs": runs}


def medians(layout: dict[str, Any]) -> dict[str, Any]:
    runs = layout["runs"]
    if not runs:
        return {"layout": layout["layout"], "runs": 0}
    by_process: dict[str, list[float]] = {}
    for r in runs:
        for row in (r.get("cpu_by_process") or {}).get("rows", []):
            if row["ms_per_order"] is not None:
                by_process.setdefault(row["process"], []).append(row["ms_per_order"])
    rest = [
        1000 * r["cpu_by_process"]["machine"]["other_cpu_s"] / r["orders"]
        for r in runs
        if r.get("cpu_by_process") and r["cpu_by_process"].get("machine") and r["orders"]
    ]
    return {
        "layout": layout["layout"],
        "processes": layout["processes"],
        "runs": len(runs),
        "orders_per_s": statistics.median(r["orders_per_s"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "all_runs": [(round(r["orders_per_s"]), round(r["p99_ms"])) for r in runs],
        "load_before": [r["load_average_1m"]["before"] for r in runs],
        "invariants_ok": all(r["invariants_ok"] for r in runs),
        "errors": sum(sum(r["errors"].values()) for r in runs),
        "ms_per_order": {p: statistics.median(v) for p, v in by_process.items()},
        "rest_ms_per_order": statistics.median(rest) if rest else None,
    }


def markdown(rows: list[dict[str, Any]], a: argparse.Namespace) -> str:
    out = [
        f"Distributed benchmark: {a.clients} clients, {a.duration:g} s of orders, medians of {a.runs} runs "
        f"per layout: `python -m app.ops.bench.distributed {shlex.join(sys.argv[1:])}`.",
        "",
        "| layout | orders/s | p50 ms | p99 ms | runs (orders/s, p99) | load avg before each run "
        "| invariants |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        if not r["runs"]:
            out.append(f"| {r['layout']} | no run finished | | | | | |")
            continue
        out.append(
            f"| {r['layout']} | {r['orders_per_s']:.0f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{', '.join(f'{o}/{p}' for o, p in r['all_runs'])} | "
            f"{', '.join(f'{x:.2f}' for x in r['load_before'])} | "
            f"{'ok' if r['invariants_ok'] and not r['errors'] else 'FAILED'} |"
        )
    processes = sorted({p for r in rows if r["runs"] for p in r["ms_per_order"]})
    out += ["", "CPU per order, ms (median over the runs), by process:", ""]
    out.append("| process | " + " | ".join(r["layout"] for r in rows if r["runs"]) + " |")
    out.append("|---|" + "---:|" * len([r for r in rows if r["runs"]]))
    for p in sorted(processes, key=lambda p: -max(r["ms_per_order"].get(p, 0) for r in rows if r["runs"])):
        cells = [f"{r['ms_per_order'][p]:.3f}" if p in r["ms_per_order"] else "" for r in rows if r["runs"]]
        out.append(f"| {p} | " + " | ".join(cells) + " |")
    totals = [sum(r["ms_per_order"].values()) for r in rows if r["runs"]]
    out.append("| **listed, total** | " + " | ".join(f"**{t:.2f}**" for t in totals) + " |")
    rest = [r["rest_ms_per_order"] for r in rows if r["runs"]]
    out.append(
        "| rest of the machine (others' work) | "
        + " | ".join("" if x is None else f"{x:.2f}" for x in rest)
        + " |"
    )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    started = time.monotonic()
    layouts = [run_layout(a, layout, i) for i, layout in enumerate(a.layout or DEFAULT_LAYOUTS)]
    rows = [medians(x) for x in layouts]
    text = markdown(rows, a)
    print(f"\n== done in {time.monotonic() - started:.0f} s\n\n{text}")
    if a.markdown:
        a.markdown.write_text(text)
    if a.json_path:
        a.json_path.write_text(json.dumps(layouts, indent=2))
    return 0 if all(r["runs"] == a.runs and r["invariants_ok"] and not r["errors"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
