"""RFC 9457 problem details: the one shape of every error this service answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)

# a namespace the project controls (a URN: RFC 9457 allows a type URI that does not resolve); the types
# and what each means are listed in docs/problems.md
TYPE_BASE = "urn:eventcollab:problem:"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise to answer with problem+json. Subclasses fix ``status``, ``slug`` and ``title``."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class BadRequest(Problem):
    pass


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class ProblemDetails(BaseModel):
    """The documented shape of every error body (RFC 9457); some carry more members (``errors``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


_MEANINGS = {
    400: "malformed request: JSON, query or path parameter, header",
    401: "no valid Bearer token (POST /person/login gives one; the operator endpoints take OPERATOR_TOKEN)",
    403: "the token is another login's (or a user's, on an operator endpoint)",
    404: "not found (another login's order is not found either)",
    409: "conflicts with the current state",
    413: "body over the size limit",
    422: "the body breaks the schema",
    429: "too many attempts: wait Retry-After seconds",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds to wait"}},
}


def declared(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for problem+json answers: ``declared(401, 403, s404="no such order")``."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {
            "description": meanings.get(f"s{status}", _MEANINGS.get(status, "error")),
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
        }
        if status in _HEADERS:
            out[status]["headers"] = _HEADERS[status]
    return out


def _declare_validation(doc: dict[str, Any]) -> None:
    """FastAPI documents a 422 with its own body for every route that validates input; the handler
    below answers 400 (parameters, malformed JSON) or 422 (a body breaking the schema) as problem+json."""
    doc.setdefault("components", {}).setdefault("schemas", {})["ProblemDetails"] = (
        ProblemDetails.model_json_schema()
    )
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            generated = responses.get("422", {}).get("content", {}).get("application/json", {})
            if generated.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
                statuses = (400, 422) if "requestBody" in operation else (400,)
                for status, declaration in declared(*statuses).items():
                    responses.setdefault(str(status), declaration)


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {})
    )


def _describe(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    items, texts = [], []
    for e in errors:
        where = tuple(e.get("loc", ()))
        loc = ".".join(str(p) for p in where if p != "body")
        items.append({"field": loc, "message": e.get("msg", "invalid"), "code": e.get("type", "")})
        if e.get("type") == "missing" and len(where) == 2 and where[0] in ("query", "path", "header"):
            # a sentence a person reads, not pydantic's "query.login: Field required"
            texts.append(f"{where[0]} parameter '{where[1]}' is required")
        else:
            texts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    return "; ".join(texts[:5]) or "invalid request", items


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _declare_validation(generate())
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status,
            exc.slug,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        detail, items = _describe(errors)
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(
                400, "malformed-json", "Malformed JSON", detail, instance=request.url.path
            )
        missing_body = any(
            e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors
        )
        if missing_body:
            return problem_response(
                400, "missing-body", "Missing body", "a JSON body is required", instance=request.url.path
            )
        # parameters in the query string are a malformed request; a body that parses but breaks
        # the schema is unprocessable content
        status, slug, title = (
            (400, "invalid-parameter", "Invalid parameter")
            if all(e.get("loc", ("",))[0] in ("query", "path", "header") for e in errors)
            else (422, "validation-failed", "Validation failed")
        )
        return problem_response(
            status, slug, title, detail, instance=request.url.path, extra={"errors": items}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # 400 here is FastAPI failing to parse a body (e.g. JSON nested too deep): malformed JSON too
        titles = {
            400: "Malformed JSON",
            404: "Not found",
            405: "Method not allowed",
            413: "Content too large",
        }
        title = titles.get(exc.status_code, "HTTP error")
        slug = title.lower().replace(" ", "-")
        return problem_response(
            exc.status_code,
            slug,
            title,
            str(exc.detail),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500,
            "internal",
            "Internal error",
            "the server failed; it has been logged",
            instance=request.url.path,
        )
