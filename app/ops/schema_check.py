"""``python -m app schema-check``: the event payloads the code generates against a published AsyncAPI
document (``docs/asyncapi.yaml`` unless ``--against PATH``), so that a change no consumer of a
published event version can follow fails CI before it ships.

A published event version is a contract in both directions: consumers written against it read the
new messages, and consumers changed with it read the old ones still in the broker, the outboxes and
the dead letters (a redrive, a rolling deploy). So, per field of each published event type, dotted
for nested objects (``address.city``; ``items[]`` for an array's items), these are breaks:

- a field removed (a rename is a removal plus a new field): the old readers need it;
- its type changed, nullability and ``format`` included (``integer`` -> ``integer | null`` hands old
  readers a null; a reader parses a ``date-time`` string into a datetime);
- an optional field made required, or a new required field: old messages do not carry it, so a
  reader of the new version rejects them;
- a required field made optional: a new message may lack what an old reader requires;
- an enum narrowed (a value removed, or a free value restricted to an enum): old messages carry it;
- a published event type missing from the code: its consumers and its messages in flight are left
  with no producer and no schema. Keep ``x.v1`` beside a new ``x.v2`` until nothing reads it.

Passes: a new optional field, a new event type (``x.v2`` beside an unchanged ``x.v1``), titles,
descriptions, defaults and examples, and a widened enum, so a value can be added: a consumer reading the
field as a ``Literal`` (orders reads ``reason`` so) is widened first, and the contract test
(``tests/unit/test_event_contracts.py``) catches it once the producer's examples carry the new value.
A union of several non-null types is compared by its types only, not inside its object variants.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PUBLISHED = Path("docs/asyncapi.yaml")


class InvalidDocument(ValueError):
    """The document cannot be read, or is not an AsyncAPI document this checker understands."""


@dataclass(frozen=True)
class Shape:
    """What a reader relies on in one JSON Schema node, with $refs and nullable anyOf resolved."""

    types: tuple[str, ...]  # sorted, "null" last; a format rides on its type: "string (date-time)"
    enum: tuple[Any, ...] | None = None  # None: any value of the types
    properties: dict[str, Shape] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    items: Shape | None = None

    @property
    def label(self) -> str:
        return " | ".join(self.types)


@dataclass(frozen=True)
class Result:
    checked: int  # the published event types compared
    new: tuple[str, ...]  # event types the code has and the document does not
    breaks: tuple[str, ...]  # one line each: "<event type>: <what broke>"


def check(published: Mapping[str, Any], current: Mapping[str, Any]) -> Result:
    """Compares two AsyncAPI documents as data (``asyncapi.document()`` or YAML loaded); raises
    :class:`InvalidDocument` when either has no payload schema where a message needs one."""
    old, new = payloads(published), payloads(current)
    breaks: list[str] = []
    for event_type, shape in old.items():
        if event_type not in new:
            breaks.append(f"{event_type}: published event type removed (keep it beside its successor)")
        else:
            breaks += (f"{event_type}: {line}" for line in _compare("", shape, new[event_type]))
    return Result(len(old), tuple(t for t in new if t not in old), tuple(breaks))


def payloads(doc: Mapping[str, Any]) -> dict[str, Shape]:
    """The ``data`` schema of every channel's messages, by event type (the channel's address)."""
    channels = doc.get("channels")
    if not isinstance(channels, Mapping):
        raise InvalidDocument("no channels")
    out: dict[str, Shape] = {}
    for key, channel in channels.items():
        if not isinstance(channel, Mapping) or not isinstance(channel.get("messages"), Mapping):
            raise InvalidDocument(f"channel {key}: no messages")
        event_type = str(channel.get("address", key))
        for message in channel["messages"].values():
            payload = _flat(doc, _flat(doc, message).get("payload"))
            data = payload.get("properties", {}).get("data")
            if data is None:
                raise InvalidDocument(f"{event_type}: the message payload has no data schema")
            # one message per channel today; were there more, the first one is the contract
            out.setdefault(event_type, _shape(doc, data, ()))
    return out


def _compare(path: str, old: Shape, new: Shape) -> Iterator[str]:
    what = f"field '{path}'" if path else "payload"
    if old.types != new.types:
        yield f"{what} type {old.label} -> {new.label}"
        return
    if old.enum is not None and new.enum is not None:
        yield from (f"{what} enum lost {value!r}" for value in old.enum if value not in new.enum)
    elif new.enum is not None:
        yield f"{what} restricted to enum {list(new.enum)!r}"
    for name, was in old.properties.items():
        inner = f"{path}.{name}" if path else name
        if name not in new.properties:
            yield f"field '{inner}' removed"
            continue
        if name in old.required and name not in new.required:
            yield f"field '{inner}' became optional"
        elif name not in old.required and name in new.required:
            yield f"field '{inner}' became required"
        yield from _compare(inner, was, new.properties[name])
    for name in new.properties:
        if name not in old.properties and name in new.required:
            yield f"new required field '{f'{path}.{name}' if path else name}'"
    if old.items is not None and new.items is not None:
        yield from _compare(f"{path}[]", old.items, new.items)


def _shape(doc: Mapping[str, Any], node: Any, seen: tuple[str, ...]) -> Shape:
    if isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and node["$ref"] in seen:
        return Shape(types=(f"$ref {node['$ref']}",))  # a recursive model: its first visit compares it
    if isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        seen = (*seen, node["$ref"])
    flat = _flat(doc, node)
    variants = flat.get("anyOf") or flat.get("oneOf")
    if isinstance(variants, list):
        shapes = [_shape(doc, v, seen) for v in variants]
        solid = [s for s in shapes if s.types != ("null",)]
        nullable = len(solid) < len(shapes)
        if len(solid) == 1:  # Optional[X]: X's shape, with null among its types
            return replace(solid[0], types=_sorted((*solid[0].types, "null") if nullable else solid[0].types))
        return Shape(_sorted(tuple({t for s in shapes for t in s.types})))
    types = flat.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if "format" in flat:
        types = [f"{t} ({flat['format']})" if t != "null" else t for t in types]
    enum = tuple(flat["enum"]) if isinstance(flat.get("enum"), list) else None
    if "const" in flat:
        enum = (flat["const"],)
    properties = flat.get("properties", {})
    return Shape(
        types=_sorted(tuple(types)) or ("any",),
        enum=enum,
        properties={name: _shape(doc, sub, seen) for name, sub in properties.items()},
        required=frozenset(flat.get("required", [])),
        items=_shape(doc, flat["items"], seen) if isinstance(flat.get("items"), Mapping) else None,
    )


def _sorted(types: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(types, key=lambda t: (t == "null", t)))


def _flat(doc: Mapping[str, Any], node: Any, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The node with its $ref and allOf merged in: siblings of a $ref win, allOf parts add up."""
    if not isinstance(node, Mapping):
        raise InvalidDocument(f"a schema or message is {node!r}, not a mapping")
    out: dict[str, Any] = {}
    if isinstance(node.get("$ref"), str):
        if node["$ref"] in chain:
            raise InvalidDocument(f"{node['$ref']} refers to itself")
        out.update(_flat(doc, _resolve(doc, node["$ref"]), (*chain, node["$ref"])))
    for part in node.get("allOf", []):
        flat = _flat(doc, part, chain)
        out["properties"] = {**out.get("properties", {}), **flat.pop("properties", {})}
        out["required"] = [*out.get("required", []), *flat.pop("required", [])]
        out.update(flat)
    out.update({k: v for k, v in node.items() if k not in ("$ref", "allOf", "properties", "required")})
    out["properties"] = {**out.get("properties", {}), **node.get("properties", {})}
    out["required"] = [*out.get("required", []), *node.get("required", [])]
    return out


def _resolve(doc: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise InvalidDocument(f"{ref}: only references inside the document are followed")
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise InvalidDocument(f"{ref} does not resolve")
        node = node[part]
    return node


def load(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidDocument(f"{path}: cannot read it: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{path}: not an AsyncAPI document (a mapping)")
    return doc


def history(path: Path = PUBLISHED) -> list[tuple[str, dict[str, Any]]]:
    """Every version of ``path`` committed in this checkout's git history, newest first, as (short
    commit, document); none outside a git checkout. A version a later commit regenerated is published
    all the same: checked against it, a break cannot hide behind a regenerated document."""
    import subprocess

    import yaml

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout

    where = str(path) if path.is_absolute() else f"./{path}"
    try:
        revs = git("log", "--format=%h", "--", str(path)).split()
        return [(rev, yaml.safe_load(git("show", f"{rev}:{where}"))) for rev in revs]
    except (OSError, subprocess.CalledProcessError, yaml.YAMLError):
        return []


def run(
    against: Path = PUBLISHED,
    current: Mapping[str, Any] | None = None,
    *,
    versions: list[tuple[str, dict[str, Any]]] | None = None,
) -> int:
    """Prints the summary (exit status 0) or one line per break (1); raises :class:`InvalidDocument`
    (the CLI exits 2) when ``against`` is unreadable or not an AsyncAPI document. ``versions``: earlier
    published documents (:func:`history`) the code must be compatible with as well."""
    if current is None:
        from app.ops.asyncapi import document

        current = document()
    published = load(against)
    try:
        result = check(published, current)
    except InvalidDocument as exc:
        raise InvalidDocument(f"{against}: {exc}") from None
    breaks = list(result.breaks)
    seen = [published]
    for rev, doc in versions or ():
        if doc in seen or not isinstance(doc, dict):
            continue  # a commit that left the document as it was, or no document at all
        seen.append(doc)
        # an event type the committed document no longer has was retired on purpose (regenerated
        # in a change of its own, past the check above): history holds the others to their word
        kept = {
            k: v for k, v in (doc.get("channels") or {}).items() if k in (published.get("channels") or {})
        }
        try:
            earlier = check({**doc, "channels": kept}, current).breaks
            breaks += [f"{line} (published in {rev})" for line in earlier]
        except InvalidDocument:
            continue  # an early commit's document this checker cannot read: not a published contract
    if breaks:
        print("\n".join(dict.fromkeys(breaks)))
        return 1
    new = f"; new: {', '.join(result.new)}" if result.new else ""
    also = f" and {len(seen) - 1} earlier version(s) of it in git" if len(seen) > 1 else ""
    print(f"{result.checked} event types checked against {against}{also}: compatible{new}")
    return 0
