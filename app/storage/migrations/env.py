"""Alembic environment: one migration history per module, each with its own version table, so a
module's tables can live in a database of their own or share one with the others."""

from __future__ import annotations

import importlib

from alembic import context

config = context.config
module: str = config.attributes["module"]
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    # only the module's tables: not its routes, nor the rest of the app
    target_metadata=importlib.import_module(f"app.{module}.models").metadata,
    version_table=f"{module}_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
    user_module_prefix="app.storage.types.",  # our TypeDecorators live there (UtcDateTime)
)
with context.begin_transaction():
    context.run_migrations()
