"""What ``python -m app bench`` found and shows: the summary (its ``--json`` object), the terminal
table, the markdown report, the latency plot."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    key: str
    at_least: bool
    bound: float
    unit: str


# the targets for 64 clients
TARGETS = (
    Target("createOrder throughput", "orders_per_s", True, 2000, "orders/s"),
    Target("createOrder p99 latency", "p99_ms", False, 50, "ms"),
    Target("createOrder ÷ bare GET /health/live", "ratio_to_bare", True, 0.2, "×"),
    Target("server CPU per order", "cpu_ms_per_order", False, 0.5, "ms"),
    Target("GET /account/ ÷ bare", "reads.balance.ratio_to_bare", True, 0.5, "×"),
    Target("GET /notice/notices/ ÷ bare", "reads.notices.ratio_to_bare", True, 0.5, "×"),
    Target("server RSS under the order load (max)", "rss_mib_orders_max", False, 150, "MiB"),
)


def table(s: Mapping[str, Any]) -> str:
    bare = s["bare"]
    rows = [
        ("createOrder", s["orders"], s["orders_per_s"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"]),
        ("GET /health/live", bare["requests"], s["bare_req_per_s"], *_lat(bare)),
    ]
    for name, r in s["reads"].items():
        rows.append((READ_PATHS[name], r["requests"], r["per_s"], *_lat(r)))
    out = [
        f"eventcollab bench: {s['clients']} clients, {_span(s)}, {s['unaffordable']:.0%} unaffordable, "
        f"{'own server' if s['own_server'] else s['base_url']}, commit {s['commit']}",
        f"{'':<22}{'answers':>10}{'per s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for name, n, rate, *lat in rows:
        out.append(f"{name:<22}{n:>10}{rate:>10.1f}" + "".join(f"{v:>10.2f}" for v in lat))
    out += [
        f"ratio createOrder ÷ bare: {s['ratio_to_bare']:.3f}"
        + "".join(f"; {READ_PATHS[n]} ÷ bare: {r['ratio_to_bare']:.3f}" for n, r in s["reads"].items()),
        f"server CPU per order: {_ms(s['cpu_ms_per_order'])}",
        f"outcomes: paid {s['paid']}, rejected {s['rejected']}, of them first answered 202: "
        f"{s['answered_202']}; sent {s['orders_sent']}",
        f"errors: {_errors(s['errors'])}; bare errors: {_errors(bare['errors'])}",
        f"cpu during orders: client {_pct(s['cpu'].get('client_pct'))}, "
        f"server {_pct(s['cpu'].get('server_pct'))} (of one core)",
        f"server RSS max: {_mib(s['rss_mib_orders_max'])} during the orders, {_mib(s['rss_mib_max'])} in all"
        " (the set-up hashes passwords)",
        f"invariants ({s['invariants'].get('source', '?')}): "
        + ("ok" if s["invariants_ok"] else "VIOLATED: " + "; ".join(s["invariants"].get("violations", []))),
    ]
    if s.get("data_dir"):
        out.append(f"server data kept in {s['data_dir']}")
    return "\n".join(out)


def write_markdown(s: Mapping[str, Any], path: Path, plot_path: Path | None) -> None:
    m, bare = s["machine"], s["bare"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated on {s['started_at']} by `{_command(s)}`{' (`make bench`)' if _standard(s) else ''};",
        "run `make bench` to refresh this page. "
        + (
            "The bench started its own server (`python -m app` on a free 127.0.0.1 port, fresh data"
            " directory, default settings: SQLite files, the memory bus, one process)."
            if s["own_server"]
            else f"The server was already running at {s['base_url']}."
        ),
        "Figures below are this one run, not a best of several.",
        "",
        "## Machine and commit",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']} |",
        f"| cores | {m['cores']} (usable {m['usable_cores']}); the load generator runs on the same machine |",
        f"| memory | {m['memory_mib'] / 1024:.1f} GiB |",
        f"| Python | {m['python']} |",
        f"| platform | {m['platform']} |",
        f"| commit | `{s['commit']}`"
        + (" with uncommitted changes under app/ (the server ran the working tree)" if s.get("dirty") else "")
        + " |",
        f"| load average (1 min) before / after | {_load(s, 'before')} / {_load(s, 'after')}: other work on"
        " the machine shares its cores |",
        "",
        "## Settings",
        "",
        f"- {s['clients']} closed-loop clients (each sends its next order when the last one got its final"
        " answer), one aiohttp session, one user per client, funded so affordable orders stay affordable",
        f"- orders: {_span(s)}; {s['unaffordable']:.0%} of them priced over the balance (expected: rejected)",
        "- latency of an order = until its final answer (paid or rejected); a 202 is followed by polling",
        "  its Location, and that time counts",
        f"- bare endpoint: `GET /health/live` on the same server with the same clients, just before the"
        f" orders: {bare['requests']} requests in {bare['elapsed_s']:.2f} s",
        "",
        "## Results",
        "",
        "| | answers | per s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| `POST /order/createOrder` | {s['orders']} | {s['orders_per_s']:.1f} | "
        + " | ".join(f"{s[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        + " |",
        f"| `GET /health/live` | {bare['requests']} | {s['bare_req_per_s']:.1f} | "
        + " | ".join(f"{v:.2f}" for v in _lat(bare))
        + " |",
        *(
            f"| `{READ_PATHS[n]}` | {r['requests']} | {r['per_s']:.1f} | "
            + " | ".join(f"{v:.2f}" for v in _lat(r))
            + " |"
            for n, r in s["reads"].items()
        ),
        "",
        f"- server CPU per order (its CPU seconds in the order phase, from /proc, over the orders"
        f" answered): **{_ms(s['cpu_ms_per_order'])}**",
        *(
            f"- {READ_PATHS[n]} ÷ bare: **{r['ratio_to_bare']:.3f}** (each client its own login's, before"
            " the orders)"
            for n, r in s["reads"].items()
        ),
        f"- createOrder ÷ bare: **{s['ratio_to_bare']:.3f}**",
        f"- createOrder answers per whole second: {_spread(s['per_second'])}",
        f"- outcomes: {s['paid']} paid, {s['rejected']} rejected; {s['answered_202']} first answered 202"
        f" and were polled to their outcome; {s['orders_sent']} sent",
        f"- errors: {_errors(s['errors'])} (bare: {_errors(bare['errors'])})",
        f"- server RSS, sampled every 0.2 s: max {_mib(s['rss_mib_orders_max'])} during the orders,"
        f" {_mib(s['rss_mib_max'])} in all (setting the users up hashes two passwords each with argon2,"
        " 19 MiB of work area per hash, at most AUTH_HASH_CONCURRENCY at once)",
        f"- CPU during the orders, in % of one core: load generator {_pct(s['cpu'].get('client_pct'))},"
        f" server {_pct(s['cpu'].get('server_pct'))}; during the bare phase: load generator"
        f" {_pct(bare['cpu'].get('client_pct'))}, server {_pct(bare['cpu'].get('server_pct'))}",
        f"- outbox drained after the run: {s['outbox_drained']} ({s['drain_s']:.2f} s)",
        f"- invariants (`{s['invariants'].get('source', '?')}` after the run): "
        + ("**ok**" if s["invariants_ok"] else "**violated**: " + "; ".join(s["invariants"]["violations"])),
        "",
        "## Targets (from the issue)",
        "",
        "| target | goal | measured | met |",
        "|---|---:|---:|---|",
        *(_target_row(t, s) for t in TARGETS),
        "",
    ]
    if s["clients"] != 64:
        lines += [f"The targets are stated for 64 clients; this run used {s['clients']}.", ""]
    if plot_path is not None:
        rel = os.path.relpath(plot_path, path.parent)
        lines += [
            "## Latency distribution",
            "",
            f"![createOrder and GET /health/live latency]({rel})",
            "",
            "Left: share of answers per latency bucket (log scale), dashed lines at p50/p95/p99. Right: the",
            "latency at each percentile. Histograms are HDR (1 µs to 60 s, 3 significant digits).",
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def plot(s: Mapping[str, Any], hists: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    series = {name: _recorded(h) for name, h in hists.items() if h.get_total_count()}
    every = [v for values, _ in series.values() for v in values]
    if not every:
        every = [1.0]
    bins = np.geomspace(max(min(every) * 0.9, 0.001), max(every) * 1.1, 90)
    for (name, (values, counts)), color in zip(series.items(), ("tab:blue", "tab:orange"), strict=False):
        h = hists[name]
        total = h.get_total_count()
        left.hist(
            values,
            bins=bins,
            weights=[c / total for c in counts],
            histtype="stepfilled",
            alpha=0.35,
            color=color,
            label=name,
        )
        for pct, style in ((50, "--"), (95, "-."), (99, ":")):
            ms = h.get_value_at_percentile(pct) / 1000
            left.axvline(ms, color=color, linestyle=style, linewidth=1.2, label=f"{name} p{pct} {ms:.2f} ms")
        levels, lat = [], []
        for item in h.get_percentile_iterator(5):
            if item.percentile_level_iterated_to < 100:
                levels.append(1 / (1 - item.percentile_level_iterated_to / 100))
                lat.append(item.value_iterated_to / 1000)
        right.plot(levels, lat, color=color, label=f"{name} (max {h.get_max_value() / 1000:.1f} ms)")
    left.set_xscale("log")
    left.set_xlabel("latency (ms, log)")
    left.set_ylabel("share of answers")
    left.set_title(f"Latency histogram, {s['clients']} clients")
    left.legend(fontsize=7)
    right.set_xscale("log")
    right.set_xticks([1, 2, 10, 100, 1000, 10000], ["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    right.set_xlabel("percentile")
    right.set_ylabel("latency (ms)")
    right.set_title("Latency by percentile")
    right.grid(True, which="major", alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"eventcollab bench, commit {s['commit']}: {s['orders_per_s']:.0f} orders/s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _recorded(hist: Any) -> tuple[list[float], list[int]]:
    # the iterator hands back one item it mutates: copy the figures out as it goes
    values, counts = [], []
    for item in hist.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000)
        counts.append(int(item.count_added_in_this_iter_step))
    return values, counts


def _command(s: Mapping[str, Any]) -> str:
    span = (
        f"--duration {s['duration_s']:g}"
        if s["duration_s"] is not None
        else f"--orders {s['orders_requested']}"
    )
    where = "" if s["own_server"] else f" --base-url {s['base_url']}"
    return f"python -m app bench{where} --clients {s['clients']} {span} --unaffordable {s['unaffordable']:g}"


def _standard(s: Mapping[str, Any]) -> bool:
    return bool(s["own_server"] and s["clients"] == 64 and s["duration_s"] == 20 and s["unaffordable"] == 0.1)


def _load(s: Mapping[str, Any], when: str) -> str:
    value = s.get("load_average_1m", {}).get(when)
    return "n/a" if value is None else f"{value:.2f}"


def _value(s: Mapping[str, Any], key: str) -> Any:
    """``s[key]``, with dots walking into nested objects ("reads.balance.ratio_to_bare")."""
    value: Any = s
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _target_row(t: Target, s: Mapping[str, Any]) -> str:
    value = _value(s, t.key)
    goal = f"{'≥' if t.at_least else '≤'} {t.bound:g} {t.unit}"
    if value is None:
        return f"| {t.name} | {goal} | not measured | — |"
    met = value >= t.bound if t.at_least else value <= t.bound
    shown = f"{value:.3f}" if t.unit in ("×", "ms") and value < 10 else f"{value:.1f}"
    return f"| {t.name} | {goal} | {shown} {t.unit} | {'yes' if met else '**no**'} |"


READ_PATHS = {"balance": "GET /account/", "notices": "GET /notice/notices/"}


def _ms(value: float | None) -> str:
    return "n/a (no server pid)" if value is None else f"{value:.3f} ms"


def _lat(part: Mapping[str, Any]) -> tuple[float, float, float, float]:
    return part["p50_ms"], part["p95_ms"], part["p99_ms"], part["max_ms"]


def _span(s: Mapping[str, Any]) -> str:
    if s["duration_s"] is not None:
        return f"{s['duration_s']:g} s (ran {s['elapsed_s']:.1f} s)"
    return f"{s['orders_requested']} orders ({s['elapsed_s']:.1f} s)"


def _errors(errors: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) if errors else "none"


def _spread(values: list[int]) -> str:
    if not values:
        return "n/a (shorter than a second)"
    ordered = sorted(values)
    return f"min {ordered[0]}, median {ordered[len(ordered) // 2]}, max {ordered[-1]} ({len(values)} seconds)"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def _mib(value: float | None) -> str:
    return "n/a (not our process)" if value is None else f"{value:.1f} MiB"
