"""No module imports another; only the wiring (and the read-only invariant checker) imports modules;
no import cycles; and, at run time, no request to a module's routes touches another module's database."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from app.billing import api as billing_api
from app.main import create_app
from app.person import service as person_service
from app.storage.database import Database
from app.system import MODULES as REGISTRY
from tests.support.auth import log_in
from tests.support.seed import walk_seed_scenario
from tests.support.settings import memory_settings

APP = Path(__file__).resolve().parents[2] / "app"
MODULES = ("person", "billing", "orders", "notifications")
# files outside the modules that may import them, and why
ALLOWED_OUTSIDE = {
    "system.py",  # the module registry: the one place that knows them all
    "ops/invariants.py",  # reads every module's tables to check the books; never writes
}


def package_of(path: Path) -> str:
    """The dotted package a file's relative imports start from: ``app/billing/api.py`` -> ``app.billing``."""
    return ".".join(path.relative_to(APP.parent).parent.parts)


def imported(source: str, package: str) -> set[str]:
    """Every name the source imports, made absolute; ``from app import x`` also yields ``app.x``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def modules_in(names: set[str]) -> set[str]:
    return {
        parts[1]
        for parts in (n.split(".") for n in names)
        if parts[0] == "app" and len(parts) > 1 and parts[1] in MODULES
    }


def modules_imported(path: Path) -> set[str]:
    return modules_in(imported(path.read_text(encoding="utf-8"), package_of(path)))


def module_files(module: str) -> list[Path]:
    return sorted((APP / module).rglob("*.py"))


def test_every_module_folder_exists_and_holds_python() -> None:
    for module in MODULES:
        assert module_files(module), f"app/{module}/ has no .py files"


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_other_module(module: str) -> None:
    crossings = {
        f"{path.relative_to(APP.parent)} imports app.{other}"
        for path in module_files(module)
        for other in modules_imported(path) - {module}
    }
    assert not crossings, sorted(crossings)


def test_only_the_wiring_imports_modules_from_outside() -> None:
    outside = [p for p in APP.rglob("*.py") if p.relative_to(APP).parts[0] not in MODULES]
    importers = {str(p.relative_to(APP)) for p in outside if modules_imported(p)}
    assert importers <= ALLOWED_OUTSIDE, sorted(importers - ALLOWED_OUTSIDE)
    assert all((APP / name).is_file() for name in ALLOWED_OUTSIDE), "an allowed file is gone: drop it"
    assert "system.py" in importers


@pytest.mark.parametrize(
    ("source", "package", "found"),
    [
        ("from app.orders.events import X", "app.billing", {"orders"}),
        ("import app.orders.models", "app.billing", {"orders"}),
        ("import app.orders as o", "app.billing", {"orders"}),
        ("from app import orders", "app.billing", {"orders"}),
        ("from app import bus, db", "app.billing", set()),
        ("from ..orders import service", "app.billing", {"orders"}),
        ("from .. import orders", "app.billing", {"orders"}),
        ("from . import service", "app.billing", {"billing"}),
        ("from app.ordersx import y", "app.billing", set()),
        ("import orders", "app.billing", set()),
        ("def f() -> None:\n    from app.person import service", "app.billing", {"person"}),
    ],
)
def test_the_import_scanner_sees_every_form_of_import(source: str, package: str, found: set[str]) -> None:
    assert modules_in(imported(source, package)) == found


def test_relative_imports_start_from_the_files_package() -> None:
    assert package_of(APP / "billing" / "api.py") == "app.billing"
    assert package_of(APP / "billing" / "__init__.py") == "app.billing"


# -- no import cycles among app modules


def module_name(path: Path) -> str:
    """``app/billing/api.py`` -> ``app.billing.api``; ``app/billing/__init__.py`` -> ``app.billing``."""
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports(source: str, package: str) -> set[str]:
    """What the source imports when it is imported: every statement outside a function (``if
    TYPE_CHECKING:`` blocks included, since a type checker follows them), made absolute. Imports in a
    function body run only when it is called, which is how a cycle is broken on purpose."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                names.update(imported(ast.unparse(child), package))
            visit(child)

    visit(ast.parse(source))
    return names


def import_graph(files: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    """``{module: (source, package)}`` -> the modules each imports, among those given. A module's own
    parent packages are no edge: Python has them in ``sys.modules`` before it runs the module, so
    ``app/billing/__init__.py`` importing ``app.billing.api``, which imports ``app.billing.service``,
    is no cycle."""
    graph: dict[str, set[str]] = {}
    for name, (source, package) in files.items():
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {t for t in module_level_imports(source, package) if t in files} - parents - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a path that
    starts and ends at the component's first module in sort order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_path_within(graph, c) for c in components]


def _path_within(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    paths = [[start]]
    while paths:  # breadth first: the shortest way back to the start
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & component):
            if w == start:
                return [*path, start]
            if w not in path:
                paths.append([*path, w])
    raise AssertionError(f"no cycle through {start}")


def app_files() -> dict[str, tuple[str, str]]:
    return {module_name(p): (p.read_text(encoding="utf-8"), package_of(p)) for p in sorted(APP.rglob("*.py"))}


def test_no_import_cycles_among_app_modules() -> None:
    graph = import_graph(app_files())
    assert len(graph) > 50 and graph["app.system"] >= {"app.billing", "app.bus", "app.config"}
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_cycle_finder_sees_type_checking_imports_and_skips_function_level_ones() -> None:
    files = {
        "app.a": ("from app import b\n", "app"),
        "app.b": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.c import X\n", "app"),
        "app.c": ("def late() -> None:\n    from app import a\n", "app"),
        "app.d": ("from .a import thing\n", "app"),
    }
    graph = import_graph(files)
    assert graph == {"app.a": {"app.b"}, "app.b": {"app.c"}, "app.c": set(), "app.d": {"app.a"}}
    assert cycles(graph) == []
    files["app.c"] = ("import app.a\n", "app")
    assert cycles(import_graph(files)) == [["app.a", "app.b", "app.c", "app.a"]]


def test_a_package_importing_its_own_modules_is_no_cycle() -> None:
    files = {
        "app.m": ("from app.m.api import router\n", "app.m"),
        "app.m.api": ("from app.m import service\n", "app.m"),
        "app.m.service": ("from app.bus import Event\n", "app.m"),
        "app.bus": ("", "app"),
        "app.other": ("from app.m import service\n", "app"),
    }
    graph = import_graph(files)
    assert graph == {
        "app.m": {"app.m.api"},
        "app.m.api": {"app.m.service"},
        "app.m.service": {"app.bus"},
        "app.bus": set(),
        "app.other": {"app.m", "app.m.service"},  # from outside, the package's __init__ runs too
    }
    assert cycles(graph) == []


# -- at run time: a request to module A's routes touches only module A's database

# the request being served in this context: (route, owning module); None outside requests
SERVING: ContextVar[tuple[str, str | None] | None] = ContextVar("serving", default=None)
ENTRY_POINTS = ("read", "query", "transact", "consume", "connect")  # every way into a Database


@dataclass(frozen=True)
class Touch:
    route: str  # "GET /account/" (the route template), or the raw path of a route no module declares
    owner: str | None  # the module whose path prefix the request is on; None: a platform route
    database: str  # the module whose database was touched
    entry: str  # read / query / transact / consume / connect


class DatabaseProbe:
    """Records which module database each HTTP request touches.

    How it detects a cross-module read: it wraps the app as ASGI middleware that sets the ContextVar
    ``SERVING`` to (route, owner) for the duration of each request, the owner being the module whose
    path prefix the request is on (``/account`` -> billing, read from each module's router). It
    replaces ``read``, ``query``, ``transact``, ``consume`` and ``connect`` on every module's Database with a
    wrapper that, at the moment it is called, records a :class:`Touch` of that database under the
    current ``SERVING``. Code running for the request (route, dependencies, anything they call or any
    task they start, which inherits the context) is attributed to it; the bus's workers, the relays and
    the writers were started with the app, outside any request, so the events a request causes are
    consumed without a request in context and do not count. A touch whose owner is a module other than
    the database's is a crossing, however it was wired (a dependency, a closure, an added route).
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.touches: list[Touch] = []
        self.routes = [(name, route) for name, module in REGISTRY.items() for route in module.router.routes]
        self.prefixes = {route.path.split("/")[1]: name for name, route in self.routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = SERVING.set((self.route_of(scope), self.prefixes.get(scope["path"].split("/")[1])))
        try:
            await self.app(scope, receive, send)
        finally:
            SERVING.reset(token)

    def route_of(self, scope: Scope) -> str:
        for _, route in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} {scope['path']}"

    def wrap(self, dbs: dict[str, Database]) -> None:
        for name, db in dbs.items():
            for entry in ENTRY_POINTS:
                setattr(db, entry, self._probe(name, entry, getattr(db, entry)))

    def _probe(self, database: str, entry: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def probed(*args: Any, **kwargs: Any) -> Any:
            serving = SERVING.get()
            if serving is not None:
                self.touches.append(Touch(serving[0], serving[1], database, entry))
            return original(*args, **kwargs)

        return probed

    def crossings(self) -> list[Touch]:
        return [t for t in self.touches if t.owner is not None and t.owner != t.database]

    def module_routes(self) -> set[str]:
        return {f"{m} {route.path}" for _, route in self.routes for m in route.methods}


@contextlib.asynccontextmanager
async def probed(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, DatabaseProbe]]:
    """``app`` started, its databases probed, and a client whose every request goes through the probe."""
    async with app.router.lifespan_context(app):
        probe = DatabaseProbe(app)
        probe.wrap(app.state.system.dbs)
        # a crossing may well fail the request (another module's tables are not there): answer a 500
        transport = httpx.ASGITransport(app=probe, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, probe


async def drive_every_module_route(client: httpx.AsyncClient) -> None:
    """The seed flow, then the routes it does not take: a person, an order, the list, no slashes."""
    login = await walk_seed_scenario(client)
    auth = await log_in(client, login)
    assert (await client.get(f"/person/persons/{login}", headers=auth)).status_code == 200
    orders = (await client.get("/order/orders", params={"login": login}, headers=auth)).json()["orders"]
    assert (await client.get(f"/order/orders/{orders[0]['id']}", headers=auth)).status_code == 200
    assert (await client.get("/account", params={"login": login}, headers=auth)).status_code == 200
    assert (await client.get("/notice/notices", params={"login": login}, headers=auth)).status_code == 200


async def test_no_request_to_a_module_touches_another_modules_database() -> None:
    async with probed(create_app(memory_settings())) as (client, probe):
        await drive_every_module_route(client)
    assert not probe.crossings(), probe.crossings()
    # not vacuous: every route of every module was driven and touched its own module's database
    own = {t.route for t in probe.touches if t.owner == t.database}
    assert own == probe.module_routes(), sorted(probe.module_routes() - own)


async def test_the_probe_catches_a_billing_route_that_reads_persons_database() -> None:
    app = create_app(memory_settings())

    @app.get("/account/registered")
    async def registered(request: Request, login: str) -> bool:
        # the crossing the card rules out: billing asking person's database whether a login exists
        person_db: Database = request.app.state.dbs["person"]
        return await person_db.read(person_service.password_hash, login) is not None

    async with probed(app) as (client, probe):
        login = await walk_seed_scenario(client)
        assert (await client.get("/account/registered", params={"login": login})).json() is True
    assert probe.crossings() == [Touch("GET /account/registered", "billing", "person", "read")]


async def _person_database(request: Request) -> Database:
    db: Database = request.app.state.dbs["person"]
    return db


def _override_billings_dependency(app: FastAPI) -> None:
    billing_database = get_args(billing_api.BillingDb)[1].dependency
    app.dependency_overrides[billing_database] = _person_database


def _swap_billings_database(app: FastAPI) -> None:
    dbs = app.state.dbs
    app.state.dbs = {**dbs, "billing": dbs["person"]}  # what the fast lane and every dependency read


@pytest.mark.parametrize(
    ("wire", "method", "path", "entry"),
    [
        # through FastAPI's dependency: the deposit (the fast lane serves only the balance reads)
        (_override_billings_dependency, "PUT", "/account/operation", "transact"),
        (_swap_billings_database, "GET", "/account/", "read"),
    ],
    ids=["a dependency override", "the app's database map"],
)
async def test_the_probe_catches_composition_code_wiring_persons_database_into_billing(
    wire: Callable[[FastAPI], None], method: str, path: str, entry: str
) -> None:
    app = create_app(memory_settings())
    async with probed(app) as (client, probe):
        body = {"login": "wired", "email": "wired@example.com", "password": "correct horse battery"}
        assert (await client.post("/person/register", json=body)).status_code == 200
        auth = await log_in(client, "wired", "correct horse battery")
        wire(app)
        if method == "PUT":
            deposit = {"login": "wired", "operation": "deposit", "sum": 5}
            await client.put(path, json=deposit, headers=auth)
        else:
            await client.get(path, params={"login": "wired"}, headers=auth)
    assert probe.crossings() == [Touch(f"{method} {path}", "billing", "person", entry)]
