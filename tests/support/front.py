"""Debian's nginx in front of upstreams on this machine, with the config the topology writes
(app/ops/nginx.py); skipped, with the command to install it, where nginx is missing."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from app.ops.nginx import INSTALL, Upstream, binary, render
from tests.support.server import free_port


def need_nginx() -> str:
    found = binary()
    if found is None:
        pytest.skip(f"nginx is not installed: {INSTALL}")
    return found


@contextlib.contextmanager
def front(
    upstreams: Sequence[Upstream], run_dir: Path, *, read_timeout: float = 15.0, timeout: float = 10.0
) -> Iterator[str]:
    """Yield the base URL of an nginx routing to ``upstreams``; stopped on exit."""
    nginx = need_nginx()
    port = free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / "nginx-temp" / sub).mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(render(port=port, upstreams=upstreams, run_dir=run_dir, read_timeout=read_timeout))
    err = str(run_dir / "nginx-error.log")
    proc = subprocess.Popen([nginx, "-e", err, "-p", str(run_dir), "-c", str(conf)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {proc.returncode}: {Path(err).read_text()[-2000:]}")
            try:
                if httpx.get(base + "/health/live", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer on {base} within {timeout}s")
            time.sleep(0.05)  # poll interval within the deadline above
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
