"""``python -m app bench`` on its own server: every order answered, figures consistent, books balanced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

CLIENTS, ORDERS, UNAFFORDABLE = 4, 80, 0.25


def test_small_bench_answers_every_order_and_keeps_the_invariants(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    flags = ["--clients", str(CLIENTS), "--orders", str(ORDERS), "--unaffordable", str(UNAFFORDABLE)]
    flags += ["--read-duration", "0.5"]
    done = subprocess.run(
        [sys.executable, "-m", "app", "bench", *flags, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    s = json.loads(out.read_text())

    assert s["errors"] == {} and s["bare"]["errors"] == {}
    assert s["orders"] == s["orders_sent"] == ORDERS
    assert (s["paid"], s["rejected"]) == (ORDERS * 3 // 4, ORDERS // 4)
    assert s["invariants_ok"] is True
    assert s["clients"] == CLIENTS
    assert s["orders_per_s"] > 0 and s["bare_req_per_s"] > 0
    assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["ratio_to_bare"] == pytest.approx(s["orders_per_s"] / s["bare_req_per_s"])
    assert s["rss_mib_max"] > 0
    # the server's own CPU, read from /proc: some, and less than the wall time of the orders allows
    assert 0 < s["cpu_ms_per_order"] < 1000 * s["elapsed_s"] * 2 / ORDERS
    for name in ("balance", "notices"):
        read = s["reads"][name]
        assert read["requests"] > 0 and read["errors"] == {}, name
        assert read["ratio_to_bare"] == pytest.approx(read["per_s"] / s["bare_req_per_s"])
    assert "createOrder" in done.stdout and "invariants" in done.stdout
