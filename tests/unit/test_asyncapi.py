"""The AsyncAPI document and the event map come from the code and cannot drift from it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from app import problems
from app.bus import Event
from app.edge import docs as docs_assets
from app.ops import asyncapi
from app.system import MODULES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def event_classes() -> set[type[Event]]:
    for package in MODULES.values():
        try:
            importlib.import_module(f"{package.__name__}.events")
        except ModuleNotFoundError:
            continue
    found: set[type[Event]] = set()
    todo = list(Event.__subclasses__())
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return {c for c in found if c.__module__.startswith("app.") and hasattr(c, "TYPE")}


def test_the_committed_asyncapi_yaml_is_what_the_code_generates() -> None:
    committed = (DOCS / "asyncapi.yaml").read_text(encoding="utf-8")
    assert committed == asyncapi.render(), (
        "docs/asyncapi.yaml is stale: regenerate it with `python -m app asyncapi > docs/asyncapi.yaml`"
    )


def test_the_committed_event_map_is_what_the_code_generates() -> None:
    committed = (DOCS / "event-map.md").read_text(encoding="utf-8")
    assert committed == asyncapi.mermaid(), (
        "docs/event-map.md is stale: regenerate it with "
        "`python -m app asyncapi --mermaid > docs/event-map.md`"
    )


def test_every_subscribed_event_type_has_a_channel_and_a_receive_operation() -> None:
    doc = asyncapi.document()
    for name, package in MODULES.items():
        for event_type in package.SUBSCRIPTIONS:
            assert doc["channels"][event_type]["address"] == event_type
            operation = doc["operations"][f"{name}.receives.{event_type}"]
            assert operation["action"] == "receive"
            assert operation["channel"] == {"$ref": f"#/channels/{event_type}"}


def test_every_event_class_has_a_channel_sent_by_its_module() -> None:
    doc = asyncapi.document()
    classes = event_classes()
    assert len(classes) >= 6
    for cls in classes:
        module = cls.__module__.split(".")[1]
        channel = doc["channels"][cls.TYPE]
        assert list(channel["messages"]) == [cls.__name__]
        assert doc["operations"][f"{module}.sends.{cls.TYPE}"]["action"] == "send"
        data = doc["components"]["schemas"][cls.__name__]
        assert set(data["properties"]) == set(cls.model_fields)


def test_the_document_is_structurally_asyncapi_3() -> None:
    doc = yaml.safe_load(asyncapi.render())
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["channels"] and doc["operations"]
    for channel_id, channel in doc["channels"].items():
        assert isinstance(channel["address"], str) and channel["address"] == channel_id
        assert channel["messages"], channel_id
        for message in channel["messages"].values():
            resolved = resolve(doc, message["$ref"])
            assert resolved["payload"] and resolved["contentType"]
    for operation_id, operation in doc["operations"].items():
        assert operation["action"] in {"send", "receive"}, operation_id
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        resolve(doc, channel_ref)
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), operation_id
    component_key = r"^[\w\d.\-_]+$"
    for kind in ("messages", "schemas"):
        for key in doc["components"][kind]:
            assert re.match(component_key, key), key
    for ref in refs(doc):
        resolve(doc, ref)


def test_a_subscription_to_an_undefined_event_type_is_refused() -> None:
    orphan = ModuleType("app.orphan")
    orphan.SUBSCRIPTIONS = {"nobody.sends_this.v1": print}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"nobody\.sends_this\.v1"):
        asyncapi.flows({**MODULES, "orphan": orphan})


async def test_the_route_serves_the_document() -> None:
    app = FastAPI()
    app.include_router(asyncapi.router())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/asyncapi.yaml")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(r.text) == asyncapi.document()


async def test_swagger_ui_is_served_from_the_vendored_files_with_no_cdn() -> None:
    # beside the AsyncAPI route: both are the API's documentation (app/edge/docs/)
    app = FastAPI(docs_url=None)
    problems.install(app)
    app.include_router(docs_assets.router("eventcollab"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "/docs-assets/swagger-ui-bundle.js" in page.text and "/openapi.json" in page.text
        assert "cdn" not in page.text.lower()
        for name, kind in docs_assets.ASSETS.items():
            r = await client.get(f"/docs-assets/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
            assert len(r.content) > 500, name
        assert (await client.get("/docs-assets/README.md")).status_code == 404
        assert (await client.get("/docs-assets/..%2F__init__.py")).status_code == 404
