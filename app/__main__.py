"""The command line: ``python -m app [command] [flags]``, also the console script ``eventcollab``.

Settings are read once, here (``Settings.load``: environment, ``.env``, ``/run/secrets``), and passed
down; a flag overrides its variable. ``--host``, ``--port``, ``--data-dir`` and ``--modules`` are flags
of serve, migrate, check and operator-token, and may come before the command too (``python -m app
--port 8011`` serves, as it always did). Every other command has flags of its own: ``python -m app
<command> --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from app.config import Settings, SettingsError
from app.ops.settings_doc import flag, variable

SYSTEM_FLAGS = ("host", "port", "data_dir", "modules")
SYSTEM_COMMANDS = ("serve", "migrate", "check", "operator-token")
COMMANDS = {
    "serve": "run the HTTP server (the command when none is given)",
    "migrate": "bring every module's schema to its newest revision, then exit",
    "check": "read every module's database and report the invariants; exit 1 on a violation",
    "bench": "the load benchmark: closed-loop clients, createOrder to its final answer",
    "up": "start the distributed topology: each module its own process, nginx in front",
    "down": "stop the distributed topology",
    "status": "show the distributed topology's processes",
    "asyncapi": "print the AsyncAPI document generated from the code (or the event map)",
    "schema-check": "compare the event schemas with the published AsyncAPI document; exit 1 on a break",
    "settings": "print the settings a process would start with (or the docs/settings.md table)",
    "operator-token": "print the operator's token (OPERATOR_TOKEN, else the data dir's, made if none yet)",
}
DESCRIPTION = (
    "eventcollab: person, billing, orders and notifications collaborating through events. Settings come "
    "from the environment, a .env file and /run/secrets (docs/settings.md); a flag overrides its variable."
)
EPILOG = "python -m app COMMAND --help shows a command's own flags. No command: serve."
DEFAULT_RUN_DIR = Path(".run")
log = logging.getLogger("app")


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every flag's default, except where there is none to show (None, or a switch that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    prog = "eventcollab" if Path(sys.argv[0]).name == "eventcollab" else "python -m app"
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=Formatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _system_flags(p.add_argument_group(f"flags of {_listed(SYSTEM_COMMANDS)}, also taken before the command"))
    commands = p.add_subparsers(dest="command", title="commands", metavar="command")
    sub = {
        name: commands.add_parser(name, help=text, description=text, formatter_class=Formatter)
        for name, text in COMMANDS.items()
    }
    for command in sub.values():
        command.set_defaults(command_parser=command)  # its usage goes with its errors
    for name in SYSTEM_COMMANDS:
        _system_flags(sub[name])
    sub["check"].add_argument("--json", action="store_true", help="print the report as JSON")
    sub["check"].add_argument(
        "--pending-grace",
        type=_seconds,
        metavar="S",
        help="seconds an order may stay pending before it counts as stale (default: ORDER_REPLY_TIMEOUT)",
    )
    from app.ops.bench import options

    sub["bench"].description = options.DESCRIPTION
    options.add_arguments(sub["bench"])
    from app.ops.topology import DEFAULT_BUS, PG_SERVER

    up = sub["up"]
    up.add_argument("--bus-url", help=f"the broker (default: $BUS_URL, else {DEFAULT_BUS})")
    up.add_argument(
        "--database-url",
        help=f"PostgreSQL for every module (default: $DATABASE_URL, else {PG_SERVER}/<this checkout's own>)",
    )
    up.add_argument(
        "--bus-namespace", help="the broker namespace (default: $BUS_NAMESPACE, else this checkout's own)"
    )
    up.add_argument(
        "--port",
        type=int,
        dest="up_port",
        help="nginx's port; the processes take the ports after it (default: $UP_PORT, else 8080)",
    )
    up.add_argument(
        "--replicas",
        dest="up_replicas",
        metavar="M=N,…",
        help="processes per module over the layout's (person 1, billing 2, orders 2, notifications 1), "
        "e.g. orders=3,billing=3 (default: $UP_REPLICAS)",
    )
    sub["down"].add_argument(
        "--wipe", action="store_true", help="also drop this checkout's own database and broker namespace"
    )
    for name in ("up", "down", "status"):
        sub[name].add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="pids and logs")
    sub["asyncapi"].add_argument(
        "--mermaid", action="store_true", help="print the event map (Markdown + Mermaid)"
    )
    from app.ops.schema_check import PUBLISHED

    sub["schema-check"].add_argument(
        "--against", type=Path, default=PUBLISHED, metavar="PATH", help="the published AsyncAPI document"
    )
    sub["schema-check"].add_argument(
        "--history", action="store_true", help="and every version of it committed in git (make lint)"
    )
    sub["settings"].add_argument("--markdown", action="store_true", help="print docs/settings.md instead")
    return p


@dataclass(frozen=True)
class Invocation:
    command: str
    args: argparse.Namespace
    parser: argparse.ArgumentParser  # the command's own: its usage goes with its errors
    flags: dict[str, Any]  # the system flags given (host, port, data_dir, modules), before or after


def parse(argv: list[str] | None = None) -> Invocation:
    """What the command line asks for; exits (status 2, with the usage) when it cannot be done."""
    top = parser()
    args = top.parse_args(argv)
    command: str = args.command or "serve"
    given = {name: getattr(args, name) for name in SYSTEM_FLAGS if hasattr(args, name)}
    if given and command not in SYSTEM_COMMANDS:
        top.error(
            f"{', '.join(map(flag, given))}: a flag of {_listed(SYSTEM_COMMANDS)}, not of {command} "
            f"(see {top.prog} {command} --help)"
        )
    return Invocation(command, args, getattr(args, "command_parser", top), given)


def main(argv: list[str] | None = None) -> None:
    run = parse(argv)
    command, args, p = run.command, run.args, run.parser
    if command in SYSTEM_COMMANDS:
        settings = _load(p, **run.flags)
        from app.observe import logs

        logs.configure(settings.log_level, settings.log_format)
        if command == "migrate":
            asyncio.run(_migrate(settings))
        elif command == "operator-token":
            from app.edge.auth import operator_token

            print(operator_token(settings))
        elif command == "check":
            sys.exit(_check(settings, args.pending_grace, as_json=args.json))
        else:
            _serve(settings)
    elif command == "bench":
        sys.exit(_bench(p, args))
    elif command in ("up", "down", "status"):
        _topology(p, command, args)
    elif command == "asyncapi":
        from app.ops.asyncapi import mermaid, render

        sys.stdout.write(mermaid() if args.mermaid else render())
    elif command == "schema-check":
        from app.ops import schema_check

        try:
            versions = schema_check.history(args.against) if args.history else None
            sys.exit(schema_check.run(args.against, versions=versions))
        except schema_check.InvalidDocument as exc:
            _stop(p, str(exc))
    else:
        from app.ops.settings_doc import markdown, shown

        sys.stdout.write(markdown(Settings) if args.markdown else shown(_load(p)))


def _listed(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _system_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    # SUPPRESS: a flag not given leaves its setting to the environment (and a flag given before the
    # command is not overwritten by the command's own default)
    p.add_argument("--host", default=argparse.SUPPRESS, help=_env_default("host"))
    p.add_argument("--port", type=int, default=argparse.SUPPRESS, help=_env_default("port"))
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=_env_default("data_dir"))
    p.add_argument("--modules", metavar="A,B", default=argparse.SUPPRESS, help=_env_default("modules"))


def _env_default(name: str) -> str:
    field = Settings.model_fields[name]
    default = ",".join(field.default) if isinstance(field.default, tuple) else field.default
    text = str(field.description).replace(f" (`{flag(name)}`)", "").replace("`", "")
    return f"{text} (default: ${variable(name)}, else {default})"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be 0 or more")
    return value


def _load(p: argparse.ArgumentParser, **flags: Any) -> Settings:
    try:
        return Settings.load(**flags)
    except SettingsError as exc:
        _stop(p, str(exc))


def _stop(p: argparse.ArgumentParser, message: str) -> NoReturn:
    p.exit(2, f"{p.prog}: {message}\n")


def _version() -> str:
    try:
        return metadata.version("eventcollab")
    except metadata.PackageNotFoundError:
        return "(not installed: pip install -e .)"


def _serve(settings: Settings) -> None:
    import uvicorn

    from app.main import create_app

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # said once the socket is bound, not before: the port may be taken
                host = f"[{settings.host}]" if ":" in settings.host else settings.host
                log.info("serving on http://%s:%d — flow viewer /, API docs /docs", host, settings.port)
                log.info("operator page: %s", _operator_page(settings))

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # logging is already set up (app/observe/logs.py): uvicorn's lines go through it
        access_log=settings.access_log,
        # X-Forwarded-For is believed from these peers only: behind nginx the login rate limit then
        # counts the client's address (tests/integration/test_front.py), and a client cannot pick one
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run does: it could not start (the port taken, the start-up failed)


def _operator_page(settings: Settings) -> str:
    """The flow viewer with the operator's token, as Jupyter prints its tokenised address. A token
    from OPERATOR_TOKEN is not written to the log: whoever set it knows it, and logs travel."""
    from urllib.parse import quote

    from app.edge.auth import operator_token

    if settings.auth_mode == "off":
        return "every operator endpoint is open (AUTH_MODE=off)"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    base = f"http://{host}:{settings.port}/?operator="
    if settings.operator_token is not None:
        return base + "<OPERATOR_TOKEN>"
    return base + quote(operator_token(settings), safe="")


async def _migrate(settings: Settings) -> None:
    from app.storage.migrate import migrate

    for name in settings.modules:
        await migrate(settings.database_url_for(name), name)
        print(f"{name}: schema at the newest revision in {settings.database_url_for(name)}")


def _check(settings: Settings, pending_grace: float | None, *, as_json: bool) -> int | str:
    urls = [settings.database_url_for(m) for m in settings.modules]
    missing = [u for u in urls if u.startswith("sqlite") and not Path(u.split("///", 1)[1]).exists()]
    if missing:
        return f"no database at {', '.join(missing)}"
    grace = settings.order_reply_timeout if pending_grace is None else pending_grace
    return asyncio.run(_report(settings, grace, as_json=as_json))


async def _report(settings: Settings, grace: float, *, as_json: bool) -> int:
    from datetime import timedelta

    import orjson

    from app.ops.invariants import check
    from app.storage.database import Database
    from app.system import MODULES as REGISTRY

    dbs: dict[str, Database] = {}
    for name in settings.modules:
        url = settings.database_url_for(name)
        dbs[name] = Database(name, url, REGISTRY[name].metadata)
        await dbs[name].start(create_tables=False)
    try:
        report = await check(dbs, pending_grace=timedelta(seconds=grace))
    finally:
        for db in dbs.values():
            await db.stop()
    print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() if as_json else report.render())
    return 0 if report.ok else 1


def _bench(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from app.ops.bench import options

    cfg = options.config(args, p)
    try:
        from app.ops.bench.load import main as bench
    except ImportError as exc:
        _stop(p, f"bench needs the bench extra ({exc.name} is missing): pip install -e '.[bench]'")
    return bench(cfg)


def _topology(p: argparse.ArgumentParser, command: str, args: argparse.Namespace) -> None:
    from app.ops import topology
    from app.ops.settings_kinds import replicas_of

    if command == "down":
        print(topology.down(args.run_dir, wipe=args.wipe))
        return
    if command == "status":
        print(topology.status(args.run_dir))
        return
    settings = _load(
        p,
        bus_url=args.bus_url,
        database_url=args.database_url,
        bus_namespace=args.bus_namespace,
        up_port=args.up_port,
        up_replicas=args.up_replicas,
    )
    chosen = settings.model_fields_set
    bus_url = settings.bus_url if "bus_url" in chosen else topology.DEFAULT_BUS
    if bus_url.startswith("memory:"):
        _stop(p, "up: the module processes share a broker: --bus-url (BUS_URL) must be nats:// or amqp://")
    if settings.database_url is not None and not settings.database_url.startswith("postgresql"):
        _stop(p, "up: the module processes share a database: --database-url must be postgresql+asyncpg://")
    t = topology.Topology(
        bus_url=bus_url,
        database_url=settings.database_url or "",
        # an explicit namespace is kept; the default one ("eventcollab") would be shared by every run
        namespace=settings.bus_namespace if "bus_namespace" in chosen else "",
        port=settings.up_port,
        run_dir=args.run_dir,
        replicas=replicas_of(settings.up_replicas),
        log_level=settings.log_level if "log_level" in chosen else "warning",
        order_reply_timeout=settings.order_reply_timeout,
        front_workers=settings.up_front_workers,
    )
    if settings.auth_secret is not None:  # an operator's secret wins: tokens survive a down and up
        t.auth_secret = settings.auth_secret.get_secret_value()
    if settings.operator_token is not None:  # likewise: Prometheus keeps scraping after a down and up
        t.operator_token = settings.operator_token.get_secret_value()
    topology.up(t)
    token = "$OPERATOR_TOKEN" if settings.operator_token is not None else t.operator_token
    print(f"  operator token (each process's /admin, /metrics, /flows): {token}")


if __name__ == "__main__":
    main()
