"""A flow drawn as a sequence diagram, in the seed's terms: Mermaid, or sequencediagram.org text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from app.observe.flows.recorder import BROKER, CLIENT, PARTICIPANTS, SERVICES, Flow


@dataclass(frozen=True, slots=True)
class Arrow:
    src: str
    dst: str
    style: str  # call | reply | nack | note
    text: str


def arrows(flow: Flow) -> list[Arrow]:
    """The flow in the seed's terms: HTTP between Client and a service, every event via the broker."""
    out: list[Arrow] = []
    for h in flow.ordered():
        svc = SERVICES.get(h.module, f"{h.module.capitalize()}-service")
        if h.kind == "request":
            out.append(Arrow(CLIENT, svc, "call", h.label))
        elif h.kind == "reply":
            out.append(Arrow(svc, CLIENT, "reply", str(h.status)))
        elif h.kind == "published":
            out.append(Arrow(svc, BROKER, "call", h.label))
        elif h.kind == "delivered":
            out.append(Arrow(BROKER, svc, "call", h.label))
        elif h.kind == "redelivered":
            out.append(Arrow(BROKER, svc, "call", f"{h.label} (redelivery, attempt {h.attempt})"))
        elif h.kind == "failed":
            reason = h.error.partition(":")[0] or "error"
            out.append(Arrow(svc, BROKER, "nack", f"nack {h.label} ({reason}, attempt {h.attempt})"))
        elif h.kind == "dead_lettered":
            out.append(Arrow(svc, svc, "note", f"dead-lettered {h.label} after {h.attempt} attempts"))
    return out


def participants(lines: Iterable[Arrow]) -> list[str]:
    seen = list(PARTICIPANTS)
    for a in lines:
        seen.extend(p for p in (a.src, a.dst) if p not in seen)
    return seen


def _clean(text: str) -> str:
    # ; # and line breaks end or escape a statement in both syntaxes
    return re.sub(r"[;#\r\n]+", " ", text)[:160]


def mermaid(flow: Flow) -> str:
    lines = arrows(flow)
    alias = {p: p.split("-")[0] for p in participants(lines)}
    out = ["sequenceDiagram"]
    out += [f"    participant {a}" if a == p else f"    participant {a} as {p}" for p, a in alias.items()]
    heads = {"call": "->>", "reply": "-->>", "nack": "--x"}
    for a in lines:
        if a.style == "note":
            out.append(f"    Note over {alias[a.src]}: {_clean(a.text)}")
        else:
            out.append(f"    {alias[a.src]}{heads[a.style]}{alias[a.dst]}: {_clean(a.text)}")
    return "\n".join(out) + "\n"


def sequencediagram(flow: Flow) -> str:
    """sequencediagram.org syntax, as the course's seed diagram is written."""
    lines = arrows(flow)
    out = [f"participant {p}" for p in participants(lines)]
    for a in lines:
        if a.style == "note":
            out.append(f"note over {a.src}:{_clean(a.text)}")
        else:
            out.append(f"{a.src}{'->' if a.style == 'call' else '-->'}{a.dst}: {_clean(a.text)}")
    return "\n".join(out) + "\n"
