"""No module imports another; only the wiring (and the read-only invariant checker) imports modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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
