"""CLI: ``python -m app [serve|migrate] [--host H] [--port P] [--data-dir D] [--modules a,b]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from app.config import MODULES, Settings


def parse(argv: list[str] | None = None) -> tuple[str, Settings]:
    env = Settings.from_env()
    p = argparse.ArgumentParser(prog="eventcollab", description=__doc__)
    p.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    p.add_argument("--host", default=env.host, help="interface to listen on (env HOST)")
    p.add_argument("--port", type=int, default=env.port, help="port (env PORT, default 8000)")
    p.add_argument("--data-dir", type=Path, default=env.data_dir, help="SQLite files (env DATA_DIR)")
    p.add_argument("--modules", default=",".join(env.modules), help="modules to run (env MODULES)")
    a = p.parse_args(argv)
    modules = tuple(m.strip() for m in a.modules.split(",") if m.strip())
    unknown = set(modules) - set(MODULES)
    if unknown:
        p.error(f"unknown modules: {', '.join(sorted(unknown))}; choose from {', '.join(MODULES)}")
    return a.command, env.with_(host=a.host, port=a.port, data_dir=a.data_dir, modules=modules)


def main(argv: list[str] | None = None) -> None:
    command, settings = parse(argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if command == "migrate":
        asyncio.run(_migrate(settings))
        return
    import uvicorn

    from app.main import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=os.environ.get("ACCESS_LOG", "0") == "1",
        loop="auto",
        http="auto",
    )


async def _migrate(settings: Settings) -> None:
    from app.db import Database
    from app.main import MODULES as REGISTRY

    for name in settings.modules:
        db = Database(name, settings.database_url_for(name), REGISTRY[name].metadata)
        await db.start()
        await db.stop()
        print(f"{name}: schema ready at {settings.database_url_for(name)}")


if __name__ == "__main__":
    main()
