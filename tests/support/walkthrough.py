"""Replaying a Markdown page's ```console blocks against a running system.

Each ``$ curl …`` line (with its ``\\`` continuations) is parsed into a request (method, path and
query, headers, body) and sent; the lines printed under it are what the page says the server answered,
and the real answer is compared with them:

- a status line (``curl -i``) by its code and reason; each header shown by name and value;
- a JSON body key by key: the same keys, the same value types, and the same values, except where a value
  is an id (32 hex digits), a timestamp, or a token cut with ``…`` — those are compared by shape. Ids are
  not free, though: the first time a printed id meets a real one they are bound, and from then on the
  page's id must meet the same real id (the retry returns the same order, a notice names the order just
  paid), and later requests that name the printed id send the real one;
- text that is not JSON, the same way as a JSON string.

Three command forms are understood: ``curl …``, ``VAR=$(curl … | python3 -c '…')`` (the snippet runs on
the body, its output becomes ``$VAR``) and ``until curl -sf …; do sleep S; done`` (polled with a
deadline). Anything else in a console block is a failure: the page shows a command nobody replays.

An HTML comment ``<!-- replay: NAME=value … -->`` right before a block says that block runs on a fresh
system started with those settings (``MODULES=person,orders``: billing not running). Blocks without one
share the page's default system, in page order.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.poll import until

BASE = "http://127.0.0.1:8000"
POLL_TIMEOUT = 10.0

_FENCE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
_DIRECTIVE = re.compile(r"<!--\s*replay:\s*([^>]*?)\s*-->\s*\Z")
_ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)=\$\((.*)\)$", re.DOTALL)
_UNTIL = re.compile(r"^until (curl .*); do sleep ([0-9.]+); done$", re.DOTALL)
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
# what varies from run to run: a token cut with … ("01a2335bed75…", "eyJhbGciOiJIUzI1NiIs…"), an id
# (a UUIDv7 as 32 hex digits), a timestamp
_CUT = r"[A-Za-z0-9_.\-]*…"
_ID_TEXT = r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"
_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"
_VARYING = re.compile(rf"(?P<cut>{_CUT})|(?P<id>{_ID_TEXT})|(?P<ts>{_TIME})")
_ID = re.compile(_ID_TEXT)
# what a cut token or a timestamp on the page matches in a real answer
_SHAPE = {"cut": r"[A-Za-z0-9_.\-]+…?", "ts": _TIME}


@dataclass(frozen=True)
class Example:
    """One ``$`` command of a console block and the lines printed under it."""

    where: str
    command: str
    shown: tuple[str, ...]


@dataclass
class Session:
    """Examples that run, in order, on one system started with ``settings`` (environment variables)."""

    settings: dict[str, str]
    examples: list[Example] = field(default_factory=list)


def examples_of(block: str, where: str, first_line: int) -> list[Example]:
    """The commands of one console block. ``$ `` starts a command, a trailing ``\\`` continues it, and
    the lines up to the next ``$ `` are its output."""
    out: list[Example] = []
    lines = block.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError(f"{where}:{first_line + i}: output before any command: {lines[i]!r}")
        start = i
        parts = [lines[i][2:]]
        while parts[-1].endswith("\\") and i + 1 < len(lines):
            parts[-1] = parts[-1][:-1].rstrip()
            i += 1
            parts.append(lines[i].strip())
        i += 1
        shown: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        out.append(Example(f"{where}:{first_line + start}", " ".join(parts), tuple(shown)))
    return out


def sessions(*pages: Path, root: Path | None = None) -> list[Session]:
    """Every console example of ``pages``: first the default session (the blocks with no directive,
    page after page), then one session per block that carries a ``replay:`` directive."""
    default = Session({})
    own: list[Session] = []
    for page in pages:
        text = page.read_text()
        name = str(page.relative_to(root)) if root else page.name
        for m in _FENCE.finditer(text):
            first_line = text.count("\n", 0, m.start(1)) + 1
            found = examples_of(m.group(1), name, first_line)
            directive = _DIRECTIVE.search(text[: m.start()])
            if directive:
                pairs = (item.split("=", 1) for item in directive.group(1).split())
                own.append(Session(dict(pairs), found))
            else:
                default.examples.extend(found)
    return [default, *own]


def words(command: str, variables: Mapping[str, str], where: str) -> list[str]:
    """The command's words as the shell splits them, ``$NAME`` replaced by the variable's value."""

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in variables:
            raise ValueError(f"{where}: ${m.group(1)} is not set by anything before it")
        return variables[m.group(1)]

    return shlex.split(_VAR.sub(value, command))


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    head: bool  # -i: the status line and headers are printed
    fail: bool  # -f: a status >= 400 is a failure (no body printed)


def parse_curl(args: list[str]) -> Request:
    """A curl command line, as far as the pages use curl: -s -S -i -f (also combined), -X, -H, -d."""
    if not args or args[0] != "curl":
        raise ValueError(f"not a curl command: {args!r}")
    method: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    body: str | None = None
    head = fail = False
    rest = iter(args[1:])
    for arg in rest:
        if arg in ("-X", "--request"):
            method = next(rest)
        elif arg in ("-H", "--header"):
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw"):
            body = next(rest)
        elif arg in ("--include",):
            head = True
        elif arg in ("--fail",):
            fail = True
        elif arg in ("--silent", "--show-error"):
            pass
        elif re.fullmatch(r"-[sSif]+", arg):
            head = head or "i" in arg
            fail = fail or "f" in arg
        elif arg.startswith("http://") and url is None:
            url = arg
        else:
            raise ValueError(f"curl argument the replay does not know: {arg!r}")
    if url is None:
        raise ValueError(f"curl without a URL: {args!r}")
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # what curl -d sends
    return Request(method or ("POST" if body is not None else "GET"), url, headers, body, head, fail)


class Ids:
    """Printed ids bound to real ones, both ways: one printed id is one real id."""

    def __init__(self) -> None:
        self.real: dict[str, str] = {}
        self.printed: dict[str, str] = {}

    def bind(self, printed: str, real: str) -> str | None:
        """Bind, or say why not (None: bound, or already bound the same way)."""
        if self.real.get(printed, real) != real:
            return f"id {printed} is {self.real[printed]} earlier on the page, here {real}"
        if self.printed.get(real, printed) != printed:
            return f"ids {self.printed[real]} and {printed} are different on the page, one id {real} here"
        self.real[printed], self.printed[real] = real, printed
        return None

    def substitute(self, text: str) -> str:
        """``text`` with every printed id that is bound replaced by its real id."""
        return _ID.sub(lambda m: self.real.get(m.group(0), m.group(0)), text)


def match_text(shown: str, actual: str, ids: Ids, where: str) -> list[str]:
    """``actual`` against ``shown``: literally, but for cut tokens, ids and timestamps (by shape)."""
    pattern: list[str] = []
    printed_ids: list[str] = []
    last = 0
    for m in _VARYING.finditer(shown):
        pattern.append(re.escape(shown[last : m.start()]))
        kind = m.lastgroup or ""
        if kind == "id":
            pattern.append(f"(?P<id{len(printed_ids)}>[0-9a-f]{{32}})")
            printed_ids.append(m.group(0))
        else:
            pattern.append(_SHAPE[kind])
        last = m.end()
    pattern.append(re.escape(shown[last:]))
    found = re.fullmatch("".join(pattern), actual, re.DOTALL)
    if found is None:
        return [f"{where}: shown {shown!r}, the server said {actual!r}"]
    problems = []
    for n, printed in enumerate(printed_ids):
        why = ids.bind(printed, found.group(f"id{n}"))
        if why:
            problems.append(f"{where}: {why}")
    return problems


def compare_json(shown: Any, actual: Any, ids: Ids, where: str) -> list[str]:
    """Same keys, same types, same values but for what varies (see :func:`match_text`)."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: shown an object, the server said {actual!r}"]
        problems = [f"{where}: key {k!r} shown, not in the answer" for k in shown if k not in actual]
        problems += [f"{where}: key {k!r} in the answer, not shown" for k in actual if k not in shown]
        for k in shown:
            if k in actual:
                problems += compare_json(shown[k], actual[k], ids, f"{where}.{k}")
        return problems
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: shown a list, the server said {actual!r}"]
        problems = []
        if len(shown) != len(actual):
            problems.append(f"{where}: {len(shown)} items shown, {len(actual)} in the answer")
        for n, (s, a) in enumerate(zip(shown, actual, strict=False)):
            problems += compare_json(s, a, ids, f"{where}[{n}]")
        return problems
    if isinstance(shown, str):
        if not isinstance(actual, str):
            return [f"{where}: shown the string {shown!r}, the server said {actual!r}"]
        return match_text(shown, actual, ids, where)
    if type(shown) is not type(actual) or shown != actual:
        return [f"{where}: shown {shown!r}, the server said {actual!r}"]
    return []


def split_shown(shown: Iterable[str], head: bool) -> tuple[str | None, list[tuple[str, str]], str]:
    """The printed output as (status line, headers, body); a status line and headers only with -i."""
    lines = list(shown)
    status: str | None = None
    headers: list[tuple[str, str]] = []
    if head and lines:
        status = lines.pop(0)
        while lines and lines[0].strip():
            name, _, value = lines.pop(0).partition(":")
            headers.append((name.strip(), value.strip()))
        if lines:
            lines.pop(0)  # the blank line before the body
    return status, headers, "\n".join(lines).strip()


def compare(example: Example, request: Request, response: httpx.Response, ids: Ids) -> list[str]:
    """The real ``response`` against what ``example`` printed."""
    where = example.where
    status, headers, body = split_shown(example.shown, request.head)
    problems: list[str] = []
    if status is not None:
        code, _, reason = status.removeprefix("HTTP/1.1 ").partition(" ")
        if code != str(response.status_code) or reason != response.reason_phrase:
            real = f"HTTP/1.1 {response.status_code} {response.reason_phrase}"
            problems.append(f"{where}: shown {status!r}, the server said {real!r}")
    for name, value in headers:
        real_value = response.headers.get(name)
        if real_value is None:
            problems.append(f"{where}: header {name!r} shown, not in the answer")
        else:
            problems += match_text(value, real_value, ids, f"{where} {name}")
    if not body:
        return problems
    try:
        shown_json = json.loads(body)
    except json.JSONDecodeError:
        return problems + match_text(body, response.text.strip(), ids, f"{where} body")
    try:
        actual_json = response.json()
    except json.JSONDecodeError:
        return [*problems, f"{where}: shown JSON, the server said {response.text!r}"]
    return problems + compare_json(shown_json, actual_json, ids, f"{where} $")


class Replay:
    """Sends a session's examples through ``client`` and collects every difference."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.ids = Ids()
        self.vars: dict[str, str] = {}
        self.sent = 0

    def words(self, command: str, where: str) -> list[str]:
        return words(command, self.vars, where)

    async def send(self, request: Request) -> httpx.Response:
        if not request.url.startswith(BASE):
            raise ValueError(f"a URL not on {BASE}: {request.url}")
        self.sent += 1
        return await self.client.request(
            request.method,
            self.ids.substitute(request.url.removeprefix(BASE)),
            headers={k: self.ids.substitute(v) for k, v in request.headers.items()},
            content=None if request.body is None else self.ids.substitute(request.body).encode(),
        )

    async def run(self, example: Example) -> list[str]:
        command = example.command
        try:
            if m := _ASSIGN.match(command):
                return await self._assign(example, m.group(1), m.group(2))
            if m := _UNTIL.match(command):
                return await self._until(example, m.group(1), float(m.group(2)))
            if command.startswith("curl "):
                request = parse_curl(self.words(command, example.where))
                return compare(example, request, await self.send(request), self.ids)
        except ValueError as e:
            return [f"{example.where}: {e}"]
        return [f"{example.where}: a command the replay does not know: {command!r}"]

    async def _assign(self, example: Example, name: str, inner: str) -> list[str]:
        words = self.words(inner, example.where)
        if "|" not in words:
            raise ValueError(f"$({inner}) is not `curl … | python3 -c …`")
        bar = words.index("|")
        snippet = words[bar + 1 :]
        if len(snippet) != 3 or snippet[:2] != ["python3", "-c"]:
            raise ValueError(f"a pipe into something other than python3 -c: {snippet!r}")
        response = await self.send(parse_curl(words[:bar]))
        out = io.StringIO()
        stdin = io.StringIO(response.text)
        with contextlib.redirect_stdout(out), _stdin(stdin):
            try:
                exec(snippet[2], {"__name__": "__main__"})
            except Exception as e:
                return [f"{example.where}: {snippet[2]!r} on {response.text!r} raised {e!r}"]
        self.vars[name] = out.getvalue().strip()
        return [] if not example.shown else [f"{example.where}: an assignment prints nothing"]

    async def _until(self, example: Example, curl: str, interval: float) -> list[str]:
        request = parse_curl(self.words(curl, example.where))
        if not request.fail:
            raise ValueError("`until curl` without -f never loops")

        async def answered() -> httpx.Response | None:
            r = await self.send(request)
            return r if r.status_code < 400 else None

        response = await until(answered, timeout=POLL_TIMEOUT, interval=interval)
        return compare(example, request, response, self.ids)


@contextlib.contextmanager
def _stdin(stream: io.StringIO) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = saved
