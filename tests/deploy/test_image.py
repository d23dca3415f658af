"""The container image: `make image` (deploy/build-image.sh) builds it here, it runs as its numeric
non-root user on the host network bound to 127.0.0.1, and the Postman collection passes against it.
Runs where podman (or a docker engine) is; skipped otherwise, with the command to install podman."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.image]

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]  # type: ignore[index]
INSTALL = "apt-get install podman buildah runc mmdebstrap"
# podman as root here: runc (crun fails on hybrid cgroups) and explicit limits (the defaults are refused)
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def engine() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0:
        return [docker]
    if shutil.which("podman") and (shutil.which("runc") or Path("/usr/sbin/runc").exists()):
        return PODMAN
    pytest.skip(f"no container engine: {INSTALL} (or a docker engine)")


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[list[str], str]]:
    cmd = engine()
    env = {**os.environ, "ENGINE": Path(cmd[0]).name}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "deploy/build-image.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    print(f"image built in {time.monotonic() - started:.0f}s:\n{done.stderr[-600:]}")
    yield cmd, f"eventcollab:{VERSION}"


def test_the_image_is_tagged_labelled_and_runs_as_a_numeric_user(image: tuple[list[str], str]) -> None:
    cmd, tag = image
    [info] = json.loads(
        subprocess.run([*cmd, "image", "inspect", tag], capture_output=True, check=True).stdout
    )
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["python", "-m", "app"]  # no --host/--port: HOST and PORT decide
    env = dict(e.split("=", 1) for e in config["Env"])
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "8000")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == "eventcollab"
    latest = subprocess.run([*cmd, "image", "inspect", "eventcollab:latest"], capture_output=True, check=True)
    assert json.loads(latest.stdout)[0]["Id"] == info["Id"]


def test_the_postman_collection_passes_against_the_running_image(image: tuple[list[str], str]) -> None:
    cmd, tag = image
    port = free_port()
    name = f"eventcollab-test-{port}"
    extra = [*LIMITS, "--no-healthcheck"] if cmd == PODMAN else []
    subprocess.run(
        [*cmd, "run", "-d", "--rm", "--name", name, "--network=host", *extra,
         "-e", "HOST=127.0.0.1", "-e", f"PORT={port}", tag],
        check=True, capture_output=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health/ready", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            logs = subprocess.run([*cmd, "logs", name], capture_output=True, text=True, check=False)
            assert time.monotonic() < deadline, (
                f"not ready within 60s:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"
            )
            time.sleep(0.2)  # poll interval within the deadline above
        who = subprocess.run([*cmd, "exec", name, "id", "-u"], capture_output=True, text=True, check=True)
        assert who.stdout.strip() == "10001"
        newman = subprocess.run(
            ["bash", "tests/postman/run.sh"],
            cwd=ROOT,
            env={**os.environ, "BASE_URL": base},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert newman.returncode == 0, newman.stdout[-6000:] + newman.stderr[-2000:]
    finally:
        subprocess.run([*cmd, "rm", "-f", "-t", "2", name], capture_output=True, check=False)
