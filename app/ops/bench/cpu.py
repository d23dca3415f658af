"""CPU by process during the order phase (``python -m app bench --cpu-of .run``): each process the
topology in that run directory started (grouped by module: two orders replicas are one row), the
servers it did not start (nats-server, PostgreSQL's backends, RabbitMQ), this load generator, and
what the rest of the machine used meanwhile, from ``/proc`` before and after. Linux only.

A row's ``ms_per_order`` is its CPU time over the orders answered: where an order's cost goes.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.ops import processes
from app.ops.topology import FRONT, load_state, records_of

SERVERS = {"nats-server": "nats-server", "postgres": "postgresql", "beam.smp": "rabbitmq"}
# nats-server and RabbitMQ are shared with whatever else uses them meanwhile: their rows say so
BENCH = "load generator (this bench)"


def _machine_busy() -> float | None:
    """Busy CPU seconds of the whole machine since boot, all cores (``/proc/stat``)."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in line[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    # guest time is already counted in user time
    return (sum(ticks[:8]) - idle) / processes.TICK


@dataclass
class Snapshot:
    by_label: dict[str, dict[int, float]] = field(default_factory=dict)
    machine: float | None = None


class CpuSampler:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        state = load_state(run_dir)
        self.records = [r for r in records_of(state) if r.state() == "running"]
        if not self.records:
            raise ValueError(f"no running topology in {run_dir} (python -m app up --run-dir {run_dir})")
        self.database = str((state or {}).get("database_url", "")).rsplit("/", 1)[-1]

    def _pids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for r in self.records:
            label = "nginx (front)" if r.name == FRONT else r.name.rsplit("-", 1)[0]
            # nginx: the master and its workers, one process group
            out[label] += processes.group_members(r.pid) if r.name == FRONT else [r.pid]
        for comm, pids in processes.named(SERVERS).items():
            for pid in pids:
                server = SERVERS[comm] if comm != "postgres" else self._postgres(pid)
                if server:
                    out[server].append(pid)
        out[BENCH] = [os.getpid()]
        return out

    def _postgres(self, pid: int) -> str | None:
        """A backend of this topology's database, or the server's own processes (WAL writer,
        checkpointer, …); backends of other databases (other people's tests) are left to the rest."""
        argv = processes.cmdline(pid)
        if not argv.startswith("postgres: "):
            return "postgresql (server)"  # the postmaster: /usr/lib/postgresql/<v>/bin/postgres
        if f" {self.database} " in argv:
            return "postgresql (backends)"
        # another database's backend names its client, "127.0.0.1(48132)" or "[local]"
        return None if re.search(r"\(\d+\)|\[local\]", argv) else "postgresql (server)"

    def snapshot(self) -> Snapshot:
        snap = Snapshot(machine=_machine_busy())
        for label, pids in self._pids().items():
            snap.by_label[label] = {p: cpu for p in pids if (cpu := processes.cpu_seconds(p)) is not None}
        return snap

    def report(self, before: Snapshot, elapsed: float, orders: int) -> dict[str, Any]:
        after = self.snapshot()
        rows = []
        total = 0.0
        for label, now in after.by_label.items():
            then = before.by_label.get(label, {})
            # a process that started during the phase counts from 0; one that ended is lost
            used = sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items())
            total += used
            count = len(now)
            rows.append(_row(label, count, used, elapsed, orders))
        rows.sort(key=lambda r: -r["cpu_s"])
        machine = None
        if before.machine is not None and after.machine is not None:
            busy = after.machine - before.machine
            machine = {
                "busy_cores": busy / elapsed,
                "cores": os.cpu_count(),
                "other_cpu_s": max(0.0, busy - total),
                "other_cores": max(0.0, busy - total) / elapsed,
            }
        return {"rows": rows, "listed_cores": total / elapsed, "machine": machine}


def _row(label: str, count: int, used: float, elapsed: float, orders: int) -> dict[str, Any]:
    return {
        "process": label,
        "processes": count,
        "cpu_s": used,
        "cores": used / elapsed if elapsed else 0.0,
        "ms_per_order": 1000 * used / orders if orders else None,
    }


def table(cpu: dict[str, Any]) -> str:
    lines = [f"{'cpu during orders':<30}{'procs':>6}{'cpu s':>9}{'% core':>9}{'ms/order':>10}"]
    for r in cpu["rows"]:
        per = "" if r["ms_per_order"] is None else f"{r['ms_per_order']:.3f}"
        lines.append(
            f"{r['process']:<30}{r['processes']:>6}{r['cpu_s']:>9.2f}{100 * r['cores']:>9.1f}{per:>10}"
        )
    m = cpu.get("machine")
    lines.append(f"{'listed':<30}{'':>6}{'':>9}{100 * cpu['listed_cores']:>9.1f}")
    if m:
        lines.append(
            f"{'rest of the machine':<30}{'':>6}{m['other_cpu_s']:>9.2f}{100 * m['other_cores']:>9.1f}"
            f"   (machine busy {100 * m['busy_cores']:.0f} % of one core, {m['cores']} cores)"
        )
    return "\n".join(lines)
