"""The inbox table shape and ``consume``: the one wrapper between the bus and a module's handlers."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

from app.bus import Envelope, Handler
from app.storage.database import Database
from app.storage.sql import Sql
from app.storage.types import UtcDateTime
from app.storage.uow import UnitOfWork

# a module's handler: ``(uow, event)``, then any dependencies it names (``app.system.bind`` gives them)
ModuleHandler = Callable[..., None]


def inbox_table(metadata: MetaData, module: str) -> Table:
    return Table(
        f"{module}_inbox",
        metadata,
        Column("group", String(64), nullable=False),
        Column("event_id", String(64), nullable=False),
        Column("type", String(128), nullable=False),
        Column("received_at", UtcDateTime(), nullable=False),
        PrimaryKeyConstraint("group", "event_id"),
    )


def consume(
    db: Database, inbox: Table, group: str, handler: Callable[[UnitOfWork, Envelope], None]
) -> Handler:
    """Wrap ``handler`` for the bus: in one unit of work record ``(group, event.id)`` in the inbox and
    apply the handler, so a redelivered event finds its id taken and has no second effect. A handler
    that raises rolls back both, and the bus redelivers."""

    record = Sql.insert(inbox, ignore=True)

    def apply(uow: UnitOfWork) -> bool:
        event = uow.cause
        assert event is not None
        first = uow.run(
            record, {"group": group, "event_id": event.id, "type": event.type, "received_at": uow.now}
        )
        if first:
            handler(uow, event)
        return bool(first)

    async def on_event(event: Envelope) -> bool:
        """True when the handler ran; False when the inbox had the event already (no effect)."""
        return await db.consume(apply, event)

    on_event.__qualname__ = f"consume[{group}]({getattr(handler, '__name__', handler)})"
    return on_event
