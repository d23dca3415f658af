"""compose.yaml: valid against the Compose specification's JSON schema (the copy check-jsonschema
ships), the same topology as `make up` (app/ops/topology.py's layout), and its nginx.conf the one
app/ops/nginx.py writes for it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.config import MODULES
from app.ops.nginx import COMPOSE_CONF, compose_conf
from app.ops.topology import LAYOUT

yaml = pytest.importorskip("yaml", reason="PyYAML reads compose.yaml: pip install pyyaml")
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_yaml_is_valid_against_the_compose_specification() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which(
        "check-jsonschema"
    )
    if checker is None:
        pytest.skip("no check-jsonschema: pip install check-jsonschema (in requirements-dev.lock)")
    done = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_the_topology_of_make_up() -> None:
    services = compose()["services"]
    assert set(services) == {*MODULES, "console", "nats", "postgres", "migrate", "nginx"}
    for module, (replicas, _) in LAYOUT.items():
        s = services[module]
        assert s["environment"]["MODULES"] == module
        assert s.get("deploy", {}).get("replicas", 1) == replicas
        assert s["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        # one signing key for every module, never a default baked into the file
        assert s["environment"]["AUTH_SECRET"].startswith("${AUTH_SECRET:?")
    assert services["console"]["environment"]["CONSUME"] == "0"
    assert services["migrate"]["command"] == ["python", "-m", "app", "migrate"]
    # nginx is the only way in, on loopback
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"nginx"} and services["nginx"]["ports"] == ["127.0.0.1:8080:80"]


def test_nats_fsyncs_before_every_acknowledgement() -> None:
    conf = (ROOT / "deploy" / "compose" / "nats.conf").read_text()
    assert "store_dir: /data" in conf and "sync_interval: always" in conf


def test_the_committed_nginx_conf_is_what_the_layout_generates() -> None:
    expected = compose_conf({m: paths for m, (_, paths) in LAYOUT.items()})
    assert COMPOSE_CONF.read_text() == expected, (
        "regenerate: python -m app.ops.nginx > deploy/compose/nginx.conf"
    )
    assert "server billing:8000" in expected and "listen 0.0.0.0:80" in expected
