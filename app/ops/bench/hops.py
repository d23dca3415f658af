"""What one order costs in each layer: a py-spy profile of the server under the bench, sorted by hop.

    make profile            # the bench on its own server, py-spy recording it during the orders
    python -m app.ops.bench.hops PROFILE.raw --cpu-ms-per-order 0.45

Each sample of the server's main thread (py-spy ``--format raw``: one collapsed stack and its count a
line) goes to the first layer below whose rule matches it, looking from the innermost frame out, so
SQLite's own time is told apart from the Python that calls it. Shares times the bench's measured CPU
per order give each layer's microseconds per order.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

# (layer, leaf rule, ancestor rule): a sample whose innermost frame matches the leaf rule, or one of
# whose frames matches the ancestor rule, is that layer's; the first layer that claims it wins
LAYERS: Sequence[tuple[str, str | None, str | None]] = (
    ("SQLite: BEGIN/COMMIT", r"^SqliteCursor\.exec ", None),
    ("SQLite: statements", r"^SqliteCursor\.(run|all|first|many) ", None),
    ("auth: token check", None, r"^Auth\.(bearer|login_of) "),
    (
        "observers: flows, metrics, log ids",
        None,
        r"^(FlowRecorder|Metrics|CorrelationObserver|Observers)\.|\(app/observe/(flows|metrics)",
    ),
    ("relays: outbox to bus, marks", None, r"^Relay\."),
    ("writer: units of work, statements' Python", None, r"^Database\._write_loop "),
    ("bus: deliveries to consumers", None, r"^_Group\._work |^MemoryBus\.publish "),
    ("HTTP: request validation", None, r"^Call\.json |^BaseModel\.model_validate_json "),
    ("HTTP: uvicorn, edge middleware, fast lane, replies", None, r"^RequestResponseCycle\.run_asgi "),
    ("event loop: asyncio, uvloop", None, None),
)


def classify(stacks: Iterable[tuple[list[str], int]]) -> Counter[str]:
    compiled = [
        (name, re.compile(leaf) if leaf else None, re.compile(anc) if anc else None)
        for name, leaf, anc in LAYERS
    ]
    out: Counter[str] = Counter()
    for frames, count in stacks:
        for name, leaf, anc in compiled:
            if leaf is None and anc is None:
                out[name] += count
                break
            if leaf is not None and leaf.search(frames[-1]):
                out[name] += count
                break
            if anc is not None and any(anc.search(f) for f in frames):
                out[name] += count
                break
    return out


def read_raw(path: Path, thread_frame: str = "Server.run ") -> list[tuple[list[str], int]]:
    """The samples of the server's main thread (those under uvicorn's ``Server.run``)."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(f.startswith(thread_frame) for f in frames):
            stacks.append((frames, int(count)))
    return stacks


def table(layers: Counter[str], cpu_ms_per_order: float | None) -> str:
    total = sum(layers.values()) or 1
    rows = ["| layer | share of the server's CPU | µs per order |", "|---|---:|---:|"]
    for name, _, _ in LAYERS:
        share = layers.get(name, 0) / total
        micros = f"{share * cpu_ms_per_order * 1000:.0f}" if cpu_ms_per_order else "—"
        rows.append(f"| {name} | {100 * share:.1f} % | {micros} |")
    if cpu_ms_per_order:
        rows.append(f"| **all** | 100 % | **{cpu_ms_per_order * 1000:.0f}** |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.ops.bench.hops", description=__doc__)
    p.add_argument("profile", type=Path, help="py-spy record --format raw output")
    p.add_argument("--cpu-ms-per-order", type=float, help="the bench's figure, to turn shares into µs")
    a = p.parse_args(argv)
    print(table(classify(read_raw(a.profile)), a.cpu_ms_per_order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
