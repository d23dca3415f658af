"""The messaging tables every module keeps in its own database, named after the module."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData, Table

from app.messaging.deadletters import deadletter_table
from app.messaging.inbox import inbox_table
from app.messaging.outbox import outbox_table
from app.storage.idempotency import idempotency_table


@dataclass(frozen=True, slots=True)
class Messaging:
    outbox: Table
    inbox: Table
    deadletter: Table
    idempotency: Table


def messaging_tables(metadata: MetaData, module: str) -> Messaging:
    return Messaging(
        outbox=outbox_table(metadata, module),
        inbox=inbox_table(metadata, module),
        deadletter=deadletter_table(metadata, module),
        idempotency=idempotency_table(metadata, module),
    )
