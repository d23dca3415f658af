from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from app.messaging.tables import messaging_tables
from app.storage.types import UtcDateTime


class BillingTable(SQLModel, registry=registry()):
    pass


class Account(BillingTable, table=True):
    __tablename__ = "billing_account"

    id: str = Field(primary_key=True, max_length=64)
    login: str = Field(unique=True, max_length=64)
    balance: int = Field(sa_type=BigInteger)  # minor units
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class Operation(BillingTable, table=True):
    """The ledger of deposits and withdrawals made over HTTP."""

    __tablename__ = "billing_operation"

    id: str = Field(primary_key=True, max_length=64)
    login: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=16)  # deposit | withdraw
    amount: int = Field(sa_type=BigInteger)
    balance_after: int = Field(sa_type=BigInteger)
    created_at: datetime = Field(sa_type=UtcDateTime)


class Payment(BillingTable, table=True):
    """One row per order billing was asked to pay: the key that makes a second request a no-op."""

    __tablename__ = "billing_payment"

    order_id: str = Field(primary_key=True, max_length=64)
    login: str = Field(index=True, max_length=64)
    amount: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16)  # paid | rejected
    reason: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_type=UtcDateTime)


metadata = BillingTable.metadata
messaging = messaging_tables(metadata, "billing")
accounts = Account.__table__  # type: ignore[attr-defined]
operations = Operation.__table__  # type: ignore[attr-defined]
payments = Payment.__table__  # type: ignore[attr-defined]
