"""The front of the distributed topology: an ``nginx.conf`` written from the same layout the module
processes are started from, for Debian's nginx (1.22; ``apt-get install nginx-light``).

What it does, the same as the chart's Ingress (ingress-nginx) does in a cluster:

- one ``upstream`` per module with its replicas and idle ``keepalive`` connections (HTTP/1.1 to the
  upstreams): without them every proxied request opens a TCP connection to uvicorn;
- prefix routing on whole segments, like an Ingress ``Prefix`` path: ``/order`` and ``/order/…``, not
  ``/orders``; what no module serves (``/``, ``/docs``, ``/openapi.json``, ``/asyncapi.yaml``,
  ``/flows…``, ``/metrics``, ``/admin/…``) goes to the console upstream, a process that runs every
  module's routes and consumes nothing;
- a refused or timed-out connection tries the next replica (``proxy_next_upstream error timeout``; nginx
  never resends a POST that already reached an upstream); ``proxy_read_timeout`` is above
  ``ORDER_REPLY_TIMEOUT``, for which createOrder may hold its request before its 202;
- ``X-Forwarded-For`` is the peer's address, replacing whatever the client sent (the front is the
  edge: a client must not pick the address the login rate limit counts), with ``X-Forwarded-Proto`` and
  ``X-Forwarded-Host``; uvicorn believes them from the front's address only (``FORWARDED_ALLOW_IPS``);
- the errors nginx itself makes (502, 504, 413, …) are problem+json bodies, like the app's;
- ``/health/live`` is the front's own; ``/health/ready`` is 200 only when a replica of every module
  and the console each answer their ``/health/ready`` with 200 (a chain of ``auth_request``
  sub-requests, one per upstream).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.problems import MEDIA_TYPE, TYPE_BASE

# status -> (type slug, title): the app's own problem types where it has them (app/problems.py)
FRONT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    413: ("payload-too-large", "Payload too large"),
    414: ("uri-too-long", "URI too long"),
    494: ("request-header-too-large", "Request header too large"),
    500: ("internal-error", "Internal error"),
    502: ("bad-gateway", "Bad gateway"),
    503: ("unavailable", "Service unavailable"),
    504: ("gateway-timeout", "Gateway timeout"),
}
DETAIL = {
    502: "no replica of the module that serves this path answered (refused or broken connection)",
    503: "the front could not pass the request on",
    504: "the module that serves this path did not answer in time",
}


INSTALL = "apt-get install nginx-light"


class FrontError(RuntimeError):
    """nginx is missing or refuses the config; the message says which and what to do."""


def binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def command(conf_text: str, run_dir: Path) -> list[str]:
    """Write ``conf_text`` to ``run_dir/nginx.conf``, check it with ``nginx -t``, and return the
    command that runs it in the foreground."""
    found = binary()
    if found is None:
        raise FrontError(f"nginx is not installed: {INSTALL}")
    run = run_dir.resolve()
    conf = run / "nginx.conf"
    conf.write_text(conf_text)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run / "nginx-temp" / sub).mkdir(parents=True, exist_ok=True)
    argv = [found, "-e", str(run / "nginx-error.log"), "-p", str(run), "-c", str(conf)]
    check = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise FrontError(f"nginx refused {conf}:\n{check.stderr.strip()}")
    return argv


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    ports: tuple[int, ...]
    prefixes: tuple[str, ...]  # empty: the console, which takes everything no prefix claims
    host: str = "127.0.0.1"  # compose: the service name, whose address resolves to every replica


def _problem_location(status: int, slug: str = "", title: str = "", detail: str = "") -> str:
    if not slug:
        slug, title = FRONT_ERRORS[status]
    body = json.dumps(
        {
            "type": TYPE_BASE + slug,
            "title": title,
            "status": status,
            "detail": detail or DETAIL.get(status, title.lower()),
        },
        separators=(",", ":"),
    )
    # nginx single-quoted string: a backslash and the quote itself are the only escapes
    text = body.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"        location @problem_{status} {{\n"
        f"            internal;\n"
        f"            default_type {MEDIA_TYPE};\n"
        f"            add_header Cache-Control no-store always;\n"
        f"            return {status} '{text}';\n"
        f"        }}\n"
    )


def render(
    *,
    port: int,
    upstreams: Sequence[Upstream],
    run_dir: Path,
    read_timeout: float,
    connect_timeout: float = 2.0,
    workers: int = 1,
    keepalive: int = 64,
    max_body: int = 1024 * 1024,
    listen: str = "127.0.0.1",
    error_log: str = "",
    written_by: str = "`python -m app up` (app/ops/nginx.py) from the topology's layout",
) -> str:
    """The whole ``nginx.conf``; nginx runs it as ``nginx -p RUN_DIR -c nginx.conf`` in the foreground
    (``daemon off``), its temporary files, pid and error log inside ``run_dir``."""
    consoles = [u for u in upstreams if not u.prefixes]
    if len(consoles) != 1:
        raise ValueError("exactly one upstream must have no prefixes: the console")
    run = run_dir if run_dir.is_absolute() else run_dir.resolve()
    temp = run / "nginx-temp"
    out = [
        f"# written by {written_by}; do not edit",
        "daemon off;",
        f"worker_processes {workers};",
        f"pid {run / 'nginx.pid'};",
        f"error_log {error_log or run / 'nginx-error.log'} warn;",
        "events { worker_connections 4096; }",
        "http {",
        "    access_log off;",
        "    server_tokens off;  # Server: nginx, without the version",
        "    default_type application/octet-stream;",
        f"    client_body_temp_path {temp / 'body'};",
        f"    proxy_temp_path {temp / 'proxy'};",
        f"    fastcgi_temp_path {temp / 'fastcgi'};",
        f"    uwsgi_temp_path {temp / 'uwsgi'};",
        f"    scgi_temp_path {temp / 'scgi'};",
        # the app answers an over-large body with its own 413 problem; nginx's limit sits above it
        f"    client_max_body_size {max(max_body * 2, 1024 * 1024)};",
        # bodies stay in memory: started as root, nginx's workers run as nobody and could not write
        # to a run directory's temp files
        f"    client_body_buffer_size {max(max_body * 2, 1024 * 1024)};",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";  # keepalive to the upstreams',
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Forwarded-For $remote_addr;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_set_header X-Forwarded-Host $http_host;",
        "    proxy_next_upstream error timeout;",
        f"    proxy_connect_timeout {connect_timeout:g}s;",
        f"    proxy_read_timeout {read_timeout:g}s;",
        f"    proxy_send_timeout {read_timeout:g}s;",
        "    proxy_buffering off;  # the flow viewer's server-sent events stream through",
        "",
    ]
    for u in upstreams:
        out.append(f"    upstream {u.name} {{")
        # a replica that refused is passed over for 2 s, not tried first by every request meanwhile
        out += [f"        server {u.host}:{p} max_fails=1 fail_timeout=2s;" for p in u.ports]
        out.append(f"        keepalive {keepalive};")
        out.append("    }")
    out += [
        "",
        "    server {",
        f"        listen {listen}:{port} reuseport backlog=4096;",
        *(f"        error_page {s} = @problem_{s};" for s in FRONT_ERRORS),
        "        location = /health/live {",
        "            default_type application/json;",
        '            return 200 \'{"status":"ok"}\';',
        "        }",
    ]
    out += _ready_chain(upstreams)
    for u in upstreams:
        for prefix in u.prefixes:
            p = prefix.rstrip("/")
            out += [
                f"        location = {p} {{ proxy_pass http://{u.name}; }}",
                f"        location ^~ {p}/ {{ proxy_pass http://{u.name}; }}",
            ]
    out.append(f"        location / {{ proxy_pass http://{consoles[0].name}; }}")
    out += [_problem_location(s) for s in FRONT_ERRORS]
    out.append(
        _problem_location(
            503, "not-ready", "Not ready", "a module has no ready replica: `python -m app status` says which"
        ).replace("@problem_503", "@not_ready")
    )
    out += ["    }", "}", ""]
    return "\n".join(out)


def _ready_chain(upstreams: Sequence[Upstream]) -> list[str]:
    """``/health/ready`` asks each upstream's ``/health/ready`` in turn: each internal location is
    allowed (``auth_request``) only when the next one answered 2xx; the last is the console's, whose
    answer (its checks of every database and the bus) is the reply. A not-ready replica (503) is
    passed over for the next one of its module."""
    names = [u.name for u in upstreams if u.prefixes] + [u.name for u in upstreams if not u.prefixes]
    lines = []
    for i, name in enumerate(names):
        last = i == len(names) - 1
        lines.append(f"        location = {'/health/ready' if last else '/_ready/' + name} {{")
        if last:
            # a refused sub-request makes auth_request answer 500: to the caller it means "not ready"
            lines.append("            error_page 500 502 504 = @not_ready;")
        else:
            lines.append("            internal;")
        if i > 0:
            lines.append(f"            auth_request /_ready/{names[i - 1]};")
        lines += [
            "            proxy_next_upstream error timeout http_503;",
            "            proxy_connect_timeout 1s;",
            "            proxy_read_timeout 3s;",
            f"            proxy_pass http://{name}/health/ready;",
            "        }",
        ]
    return lines


COMPOSE_CONF = Path(__file__).resolve().parents[2] / "deploy" / "compose" / "nginx.conf"


def compose_conf(prefixes: Mapping[str, tuple[str, ...]], *, read_timeout: float = 15.0) -> str:
    """compose.yaml's ``nginx.conf``: the same front, the upstreams by service name on port 8000
    (Docker's and Podman's DNS give every replica's address for a service with ``replicas: 2``)."""
    upstreams = [Upstream(name, (8000,), paths, host=name) for name, paths in prefixes.items()]
    return render(
        port=80,
        listen="0.0.0.0",
        upstreams=[*upstreams, Upstream("console", (8000,), (), host="console")],
        run_dir=Path("/tmp"),
        read_timeout=read_timeout,
        error_log="/dev/stderr",
        written_by="`python -m app.ops.nginx` for compose.yaml (app/ops/nginx.py)",
    )


def main() -> None:
    """``python -m app.ops.nginx > deploy/compose/nginx.conf``; a unit test fails when they differ."""
    from app.ops.topology import LAYOUT

    print(compose_conf({m: paths for m, (_, paths) in LAYOUT.items()}), end="")


if __name__ == "__main__":
    main()
