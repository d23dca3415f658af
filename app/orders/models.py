from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from app.messaging.tables import messaging_tables
from app.storage.types import UtcDateTime


class OrdersTable(SQLModel, registry=registry()):
    pass


class Order(OrdersTable, table=True):
    __tablename__ = "orders_order"
    __table_args__ = (Index("ix_orders_order_login_created", "login", "created_at"),)

    id: str = Field(primary_key=True, max_length=64)
    login: str = Field(max_length=64)
    price: int = Field(sa_type=BigInteger)  # minor units
    status: str = Field(max_length=16)  # pending | paid | rejected
    reason: str | None = Field(default=None, max_length=32)
    description: str | None = Field(default=None, sa_type=Text)
    items: str | None = Field(default=None, sa_type=Text)  # JSON, as the client sent it (validated)
    created_at: datetime = Field(sa_type=UtcDateTime)
    settled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


metadata = OrdersTable.metadata
messaging = messaging_tables(metadata, "orders")
orders = Order.__table__  # type: ignore[attr-defined]
