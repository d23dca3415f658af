"""CLI: ``python -m app [serve|migrate|check|settings] [--host H] [--port P] [--data-dir D] [--modules a,b]``.

serve     run the HTTP server (default)
migrate   create or upgrade every module's schema, then exit
check     read every module's database and report the invariants; exit 1 on a violation
settings  print the settings a process would start with (``--markdown``: docs/settings.md)

Settings are read once, here (``Settings.load``: environment, ``.env``, ``/run/secrets``); a flag
overrides its variable, and a value a setting does not accept stops the start-up with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from app.config import Settings, SettingsError


def parse(argv: list[str] | None = None) -> tuple[str, Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="eventcollab", description=__doc__)
    commands = ["serve", "migrate", "check", "bench", "settings"]
    p.add_argument("command", nargs="?", default="serve", choices=commands)
    p.add_argument("--host", help="interface to listen on (env HOST)")
    p.add_argument("--port", type=int, help="port (env PORT, default 8000)")
    p.add_argument("--data-dir", type=Path, help="SQLite files (env DATA_DIR)")
    p.add_argument("--modules", help="modules to run (env MODULES)")
    p.add_argument("--json", action="store_true", help="check: print the report as JSON")
    p.add_argument("--pending-grace", type=float, default=None, help="check: seconds an order may be pending")
    p.add_argument("--markdown", action="store_true", help="settings: print docs/settings.md")
    a = p.parse_args(argv)
    try:
        settings = Settings.load(host=a.host, port=a.port, data_dir=a.data_dir, modules=a.modules)
    except SettingsError as exc:
        p.exit(2, f"{p.prog}: {exc}\n")
    return a.command, settings, a


def main(argv: list[str] | None = None) -> None:
    rest = sys.argv[1:] if argv is None else argv
    if rest[:1] == ["bench"]:  # its flags are its own: python -m app bench --help
        from app.ops.bench import options

        bench_parser = argparse.ArgumentParser(prog="python -m app bench", description=options.DESCRIPTION)
        options.add_arguments(bench_parser)
        cfg = options.config(bench_parser.parse_args(rest[1:]), bench_parser)
        from app.ops.bench.load import main as bench

        sys.exit(bench(cfg))
    if rest[:1] == ["settings"] and "--markdown" in rest:  # the model's page, whatever the environment
        from app.ops.settings_doc import markdown

        sys.stdout.write(markdown(Settings))
        return
    command, settings, args = parse(argv)
    if command == "settings":
        from app.ops.settings_doc import shown

        sys.stdout.write(shown(settings))
        return
    from app.observe import logs

    logs.configure(settings.log_level, settings.log_format)
    if command == "migrate":
        asyncio.run(_migrate(settings))
        return
    if command == "check":
        urls = [settings.database_url_for(m) for m in settings.modules]
        missing = [u for u in urls if u.startswith("sqlite") and not Path(u.split("///", 1)[1]).exists()]
        if missing:
            sys.exit(f"no database at {', '.join(missing)}")
        grace = settings.order_reply_timeout if args.pending_grace is None else args.pending_grace
        sys.exit(asyncio.run(_check(settings, grace, as_json=args.json)))
    import uvicorn

    from app.main import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # logging is already set up (app/observe/logs.py): uvicorn's lines go through it
        access_log=settings.access_log,
        loop="auto",
        http="auto",
    )


async def _migrate(settings: Settings) -> None:
    from app.storage.migrate import migrate

    for name in settings.modules:
        await migrate(settings.database_url_for(name), name)
        print(f"{name}: schema at the newest revision in {settings.database_url_for(name)}")


async def _check(settings: Settings, grace: float, *, as_json: bool) -> int:
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


if __name__ == "__main__":
    main()
