"""The AsyncAPI 3.0 document and the event map, generated from the code: every module's ``events.py``
classes (what it sends) and ``SUBSCRIPTIONS`` (what it receives).

    python -m app asyncapi > docs/asyncapi.yaml
    python -m app asyncapi --mermaid > docs/event-map.md

``tests/unit/test_asyncapi.py`` fails when either committed file differs from what this prints.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from app.bus import Event
from app.system import MODULES

VERSION = "0.1.0"
REF = "#/components/schemas/{model}"
# what every event on the wire looks like (Envelope.to_json: CloudEvents 1.0, structured mode)
ENVELOPE: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 envelope (structured mode); `data` is the event's payload.",
    "required": ["specversion", "id", "type", "source", "time", "datacontenttype", "data"],
    "properties": {
        "specversion": {"type": "string", "const": "1.0"},
        "id": {"type": "string", "description": "Unique per event; consumers dedupe on it (inbox)."},
        "type": {"type": "string", "description": "`<module>.<past_tense>.v<N>`: the channel."},
        "source": {"type": "string", "description": "The module that emitted the event."},
        "subject": {"type": "string", "description": "Ordering key: events of one subject keep order."},
        "time": {"type": "string", "format": "date-time"},
        "correlationid": {"type": "string", "description": "The request that started the flow."},
        "causationid": {"type": "string", "description": "The event (or request) that caused this one."},
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the span that emitted the event (CloudEvents distributed "
            "tracing extension); present only when tracing is on (OTEL_TRACES).",
        },
        "datacontenttype": {"type": "string", "const": "application/json"},
        "data": {"type": "object"},
    },
}


@dataclass(frozen=True)
class Flow:
    """One event type: the class that defines it, the module that sends it, the modules that receive it."""

    event_type: str
    model: type[Event]
    sender: str
    receivers: tuple[str, ...]


def _modules() -> Mapping[str, ModuleType]:
    return MODULES


def _events(package: ModuleType) -> list[type[Event]]:
    try:
        events = importlib.import_module(f"{package.__name__}.events")
    except ModuleNotFoundError:
        return []  # a module that publishes nothing has no events.py
    return [
        cls
        for _, cls in vars(events).items()
        if inspect.isclass(cls) and issubclass(cls, Event) and cls.__module__ == events.__name__
    ]


def flows(modules: Mapping[str, ModuleType] | None = None) -> list[Flow]:
    """Every event type, in module order then definition order. Raises if a module subscribes to a type
    that no module defines, or two classes claim one type."""
    modules = _modules() if modules is None else modules
    receivers: dict[str, list[str]] = {}
    for name, package in modules.items():
        for event_type in package.SUBSCRIPTIONS:
            receivers.setdefault(event_type, []).append(name)
    out: dict[str, Flow] = {}
    for name, package in modules.items():
        for model in _events(package):
            if model.TYPE in out:
                raise ValueError(
                    f"{model.TYPE} is defined twice: {out[model.TYPE].model.__name__} and {model.__name__}"
                )
            out[model.TYPE] = Flow(model.TYPE, model, name, tuple(receivers.pop(model.TYPE, ())))
    if receivers:
        raise ValueError(f"subscribed to, but no events.py defines: {sorted(receivers)}")
    return list(out.values())


def document(modules: Mapping[str, ModuleType] | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document as plain data, ready for YAML or JSON."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEvent": ENVELOPE}
    for flow in flows(modules):
        name = flow.model.__name__
        schema = flow.model.model_json_schema(ref_template=REF)
        for def_name, definition in schema.pop("$defs", {}).items():
            _add(schemas, def_name, definition)
        _add(schemas, name, schema)
        doc = inspect.cleandoc(flow.model.__doc__ or "")
        message: dict[str, Any] = {
            "name": name,
            "title": flow.event_type,
            "summary": doc.splitlines()[0] if doc else f"{flow.sender} emits {flow.event_type}",
            "contentType": "application/cloudevents+json",
            "payload": {
                "allOf": [
                    {"$ref": REF.format(model="CloudEvent")},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": flow.event_type},
                            "source": {"const": flow.sender},
                            "data": {"$ref": REF.format(model=name)},
                        },
                    },
                ]
            },
        }
        _add(messages, name, message)
        channels[flow.event_type] = {
            "address": flow.event_type,
            "title": flow.event_type,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"{flow.sender}.sends.{flow.event_type}"] = _operation(
            "send", flow.event_type, name, f"{flow.sender} publishes {flow.event_type} through its outbox"
        )
        for receiver in flow.receivers:
            operations[f"{receiver}.receives.{flow.event_type}"] = _operation(
                "receive",
                flow.event_type,
                name,
                f"{receiver} consumes {flow.event_type} as consumer group '{receiver}'",
            )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "eventcollab events",
            "version": VERSION,
            "description": (
                "Every event the modules exchange over the bus. Generated from app/*/events.py and "
                "SUBSCRIPTIONS by `python -m app asyncapi`; do not edit by hand."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _operation(action: str, channel: str, message: str, summary: str) -> dict[str, Any]:
    # fresh objects each time: shared ones would come out as YAML anchors
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
    }


def _add(into: dict[str, Any], key: str, value: Any) -> None:
    if key in into and into[key] != value:
        raise ValueError(f"two different definitions named {key}: rename one class")
    into[key] = value


def render(modules: Mapping[str, ModuleType] | None = None) -> str:
    import yaml  # here: only this needs PyYAML, not the app's start-up

    text: str = yaml.safe_dump(document(modules), sort_keys=False, allow_unicode=True, width=110)
    return text


def mermaid(modules: Mapping[str, ModuleType] | None = None) -> str:
    """The event map as a Markdown file holding a Mermaid flowchart: module → event → module."""
    all_flows = flows(modules)
    names = list(_modules() if modules is None else modules)
    lines = ["flowchart LR"]
    lines += [f"  {m}[{m}]" for m in names]
    for f in all_flows:
        node = "ev_" + re.sub(r"\W", "_", f.event_type)
        lines.append(f'  {node}(["{f.event_type}"])')
        lines.append(f"  {f.sender} --> {node}")
        lines += [f"  {node} --> {r}" for r in f.receivers]
    return "\n".join(
        [
            "# Event map",
            "",
            "<!-- generated by `python -m app asyncapi --mermaid > docs/event-map.md`; do not edit -->",
            "",
            "Which module publishes each event (left) and which modules consume it (right), read from",
            "`app/*/events.py` and each module's `SUBSCRIPTIONS`. Payload schemas: `docs/asyncapi.yaml`.",
            "",
            "```mermaid",
            *lines,
            "```",
            "",
        ]
    )


@functools.cache
def _rendered() -> bytes:
    return render().encode()


def router() -> APIRouter:
    r = APIRouter()

    @r.get("/asyncapi.yaml", tags=["docs"], response_class=Response)
    async def asyncapi() -> Response:
        """The AsyncAPI 3.0 document of every event on the bus."""
        return Response(_rendered(), media_type="application/yaml")

    return r
