"""The settings in words, from a model's fields: the message refusing a value, ``docs/settings.md``
(``python -m app settings --markdown``) and the values a process would start with (``python -m app
settings``). It imports nothing of the app: ``app/config.py`` words its errors with it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings


def variable(name: str) -> str:
    """The environment variable of the setting ``name``."""
    return name.upper()


def flag(name: str) -> str:
    """The command-line flag that overrides the setting ``name``, where there is one."""
    return "--" + name.replace("_", "-")


def explain(exc: ValidationError, fields: Mapping[str, FieldInfo], flags: Mapping[str, Any]) -> str:
    """One line per refused value: the variable (or the flag that gave it), what it got, what it takes."""
    lines, seen = [], set()
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        field = fields.get(name)
        if field is None:  # not a setting at all: a typo in a caller's keyword
            lines.append(f"{name or 'settings'}: {error['msg']}")
            continue
        if name in seen:  # one line a setting: its first error says enough
            continue
        seen.add(name)
        label = flag(name) if name in flags else variable(name)
        shown = "(hidden)" if is_secret(field) else repr(error["input"])
        msg = error["msg"].removeprefix("Value error, ")
        lines.append(f"{label}={shown}: {msg[:1].lower()}{msg[1:]}; {label} accepts {accepts(field)}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def accepts(field: FieldInfo) -> str:
    """What a setting accepts, in words: its type and bounds, or what its field says."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "accepts" in extra:
        return str(extra["accepts"])
    kind = _without_none(field.annotation)
    if get_origin(kind) is Literal:
        choices = [f"`{c}`" if c else "empty" for c in get_args(kind)]
        return "one of " + ", ".join(choices)
    if kind is bool:
        return "`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`"
    if kind is int:
        return f"an integer{_bounds(field)}"
    if kind is float:
        return f"a number{_bounds(field)}"
    return "text"


def is_secret(field: FieldInfo) -> bool:
    return _without_none(field.annotation) is SecretStr


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        rest = [a for a in get_args(annotation) if a is not NoneType]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _bounds(field: FieldInfo) -> str:
    low = high = ""
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge):
            low = f"≥ {bound.ge}"
        elif isinstance(bound, annotated_types.Gt):
            low = f"> {bound.gt}"
        elif isinstance(bound, annotated_types.Le):
            high = f"≤ {bound.le}"
    if low.startswith("≥") and high:
        return f" from {low[2:]} to {high[2:]}"
    return "".join(f" {b}" for b in (low, high) if b)


def markdown(model: type[BaseSettings]) -> str:
    """``docs/settings.md``: how settings are read, and one row per setting of ``model``."""
    rows = [
        f"| `{variable(name)}` | {_default(field)} | {accepts(field)} | {field.description} |"
        for name, field in model.model_fields.items()
    ]
    return "\n".join(
        [
            "# Settings",
            "",
            "<!-- generated from app/config.py by `python -m app settings --markdown > docs/settings.md`; "
            "do not edit -->",
            "",
            "Every setting is an environment variable. A process reads them once, at start-up "
            "(`Settings.load` in `app/config.py`), and passes them down; highest first:",
            "",
            "1. the command line's flags: `--host`, `--port`, `--data-dir`, `--modules`;",
            "2. the environment (a variable set to the empty string counts as unset);",
            "3. a `.env` file in the working directory (`NAME=value` lines; lines naming no setting are "
            "ignored, so the file can be shared with docker compose);",
            "4. files in `/run/secrets` named after a setting, in any case: Docker and Kubernetes secrets, "
            "e.g. `/run/secrets/auth_secret` for `AUTH_SECRET`;",
            "5. the defaults below.",
            "",
            "A value outside what a setting accepts stops the process before it changes anything, with a "
            "message naming the variable, the value and what it accepts (exit status 2). "
            "`python -m app settings` prints the values a process would start with, secrets hidden.",
            "",
            "| variable | default | accepts | meaning |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def shown(settings: BaseSettings) -> str:
    """``NAME=value`` lines of ``settings``, secrets hidden: what ``python -m app settings`` prints."""
    lines = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        text = ("(set)" if value is not None else "") if is_secret(field) else _without_password(_text(value))
        lines.append(f"{variable(name)}={text}")
    return "\n".join(lines) + "\n"


def _without_password(text: str) -> str:
    # database and broker URLs may carry one: scheme://user:password@host
    return re.sub(r"(://[^/:@]*:)[^/@]+@", r"\1(hidden)@", text)


def _default(field: FieldInfo) -> str:
    if field.default is None:
        return "unset"
    if field.default == "":
        return "empty"
    return f"`{_text(field.default)}`"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "" if value is None else str(value)
