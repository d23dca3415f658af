"""Problem types: URNs under the project's own namespace, each listed in docs/problems.md."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

import app.main  # noqa: F401  (imports every module, so every Problem subclass is defined)
from app.problems import TYPE_BASE, Problem, problem_response

DOC = Path(__file__).resolve().parents[2] / "docs" / "problems.md"
# answered by the handlers in app/problems.py, app/ops/health.py and app/ops/gateway.py, not a subclass
HANDLER_SLUGS = {
    "malformed-json",
    "missing-body",
    "invalid-parameter",
    "validation-failed",
    "method-not-allowed",
    "content-too-large",
    "http-error",
    "internal",
    "not-ready",
    "bad-gateway",
    "gateway-timeout",
}


def subclasses(cls: type[Problem]) -> set[type[Problem]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_a_problem_type_is_a_urn_of_the_projects_namespace() -> None:
    assert TYPE_BASE == "urn:eventcollab:problem:"
    body = orjson.loads(problem_response(409, "login-taken", "Login taken", "x").body)
    assert body["type"] == "urn:eventcollab:problem:login-taken"


def test_every_problem_type_is_documented() -> None:
    listed = set(re.findall(r"`urn:eventcollab:problem:([a-z-]+)`", DOC.read_text()))
    slugs = {cls.slug for cls in subclasses(Problem)} | {Problem.slug} | HANDLER_SLUGS
    assert slugs - listed == set(), "add them to docs/problems.md"
    assert listed - slugs == set(), "docs/problems.md lists types the app no longer answers"
