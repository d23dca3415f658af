"""The messaging tables every module keeps in its own database, named after the module."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData, Table

from app.deadletters import deadletter_table
from app.idempotency import idempotency_table
from app.inbox import inbox_table
from app.outbox import outbox_table


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
