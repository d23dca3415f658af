"""Alembic environment: one migration history per module, each with its own version table, so a
module's tables can live in a database of their own or share one with the others."""

from __future__ import annotations

from alembic import context

from app.main import MODULES

config = context.config
module: str = config.attributes["module"]
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    target_metadata=MODULES[module].metadata,
    version_table=f"{module}_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
    user_module_prefix="app.db.",  # our TypeDecorators live there (UtcDateTime)
)
with context.begin_transaction():
    context.run_migrations()
