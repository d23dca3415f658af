"""A flow drawn as a sequence diagram, in the seed's terms: Mermaid, or sequencediagram.org text.

``labels="events"`` words each arrow with what the system saw (event types, methods and paths,
statuses); ``labels="seed"`` with the seed diagram's own words (app/observe/flows/seed.py), in its own
syntax, so the export can be laid next to the seed and compared line by line. Each module's own change
is a self-arrow (``Billing-service->Billing-service: withdraw 300.00, balance 700.00``); a service is
active (its activation bar) from the request or delivery it handles to its reply or ack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from app.observe.flows import seed
from app.observe.flows.recorder import BROKER, CLIENT, PARTICIPANTS, SERVICES, Flow

Labels = Literal["events", "seed"]


@dataclass(frozen=True, slots=True)
class Arrow:
    src: str
    dst: str
    # call | reply | nack | self | note | activate | deactivate | divider
    style: str
    text: str = ""


def service(module: str) -> str:
    return SERVICES.get(module, f"{module.capitalize()}-service")


def arrows(flow: Flow, labels: Labels = "events") -> list[Arrow]:
    """The flow in the seed's terms: HTTP between Client and a service, every event via the broker."""
    out: list[Arrow] = []
    active: dict[str, int] = {}
    result = seed.outcome(flow)

    def activate(who: str) -> None:
        active[who] = active.get(who, 0) + 1
        out.append(Arrow(who, who, "activate"))

    def deactivate(who: str) -> None:
        if active.get(who, 0) > 0:  # Mermaid refuses to end a bar that is not there
            active[who] -= 1
            out.append(Arrow(who, who, "deactivate"))

    for h in flow.ordered():
        svc = service(h.module)
        said = seed.words(flow, h, result) if labels == "seed" else None
        if h.kind == "request":
            out.append(Arrow(CLIENT, svc, "call", said or h.label))
            activate(svc)
        elif h.kind == "reply":
            out.append(Arrow(svc, CLIENT, "reply", said or str(h.status)))
            deactivate(svc)
        elif h.kind == "published":
            out.append(Arrow(svc, BROKER, "call", said or h.label))
        elif h.kind in ("delivered", "redelivered", "duplicate"):
            text = said or h.label
            if h.kind == "redelivered":
                text = f"{text} (redelivery, attempt {h.attempt})"
            elif h.kind == "duplicate":
                text = f"{text} (duplicate delivery)"
            # the seed draws a consumer taking its events from the broker: the arrow points at it
            out.append(Arrow(svc, BROKER, "call", text) if said else Arrow(BROKER, svc, "call", text))
            activate(svc)
        elif h.kind == "acked":
            deactivate(svc)
        elif h.kind == "skipped":
            out.append(Arrow(svc, svc, "note", "inbox: a duplicate, skipped"))
        elif h.kind == "note":
            out.append(Arrow(svc, svc, "self", said or h.label))
        elif h.kind == "failed":
            reason = h.error.partition(":")[0] or "error"
            out.append(Arrow(svc, BROKER, "nack", f"nack {h.label} ({reason}, attempt {h.attempt})"))
            deactivate(svc)
        elif h.kind == "dead_lettered":
            out.append(Arrow(svc, svc, "note", f"dead-lettered {h.label} after {h.attempt} attempts"))
    for who, n in active.items():
        out.extend(Arrow(who, who, "deactivate") for _ in range(n))
    return out


def scenario_arrows(flows: Sequence[Flow], labels: Labels = "events") -> list[Arrow]:
    """The flows one after another, each under a divider naming its step: the whole scenario."""
    out: list[Arrow] = []
    for flow in flows:
        out.append(Arrow(CLIENT, PARTICIPANTS[-1], "divider", flow.kind or "events"))
        out.extend(arrows(flow, labels))
    return out


def participants(lines: Iterable[Arrow]) -> list[str]:
    seen = list(PARTICIPANTS)
    for a in lines:
        seen.extend(p for p in (a.src, a.dst) if p not in seen)
    return seen


def _clean(text: str) -> str:
    # ; # and real line breaks end or escape a statement in both syntaxes (the seed's \n escape stays)
    return re.sub(r"[;#\r\n]+", " ", text)[:200]


def mermaid_of(lines: list[Arrow]) -> str:
    alias = {p: p.split("-")[0] for p in participants(lines)}
    out = ["sequenceDiagram"]
    out += [f"    participant {a}" if a == p else f"    participant {a} as {p}" for p, a in alias.items()]
    heads = {"call": "->>", "reply": "-->>", "nack": "--x", "self": "->>"}
    last = alias[PARTICIPANTS[-1]]
    for a in lines:
        src, text = alias[a.src], _clean(a.text).replace("\\n", "<br/>")
        if a.style in ("activate", "deactivate"):
            out.append(f"    {a.style} {src}")
        elif a.style == "note":
            out.append(f"    Note over {src}: {text}")
        elif a.style == "divider":
            out.append(f"    Note over {alias[CLIENT]},{last}: {text}")
        else:
            out.append(f"    {src}{heads[a.style]}{alias[a.dst]}: {text}")
    return "\n".join(out) + "\n"


def sequencediagram_of(lines: list[Arrow], *, seed_syntax: bool = False) -> str:
    """``seed_syntax``: as the seed writes its lines (``Brocker-service<-Billing-service:…``, no space
    after the colon), so that the two texts compare line by line."""
    out = [f"participant {p}" for p in participants(lines)]
    for a in lines:
        text = _clean(a.text)
        if a.style in ("activate", "deactivate"):
            out.append(f"{a.style} {a.src}")
        elif a.style == "note":
            out.append(f"note over {a.src}:{text}")
        elif a.style == "divider":
            out.append(f"=={text}==")
        elif seed_syntax and a.dst in (BROKER, CLIENT) and a.style != "nack" and a.text not in seed.FORWARD:
            out.append(f"{a.dst}<-{a.src}:{text}")
        elif seed_syntax:
            out.append(f"{a.src}->{a.dst}:{text}")
        else:
            out.append(f"{a.src}{'-->' if a.style in ('reply', 'nack') else '->'}{a.dst}: {text}")
    return "\n".join(out) + "\n"
