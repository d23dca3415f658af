from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from app.messaging.tables import messaging_tables
from app.storage.types import UtcDateTime


class NotificationsTable(SQLModel, registry=registry()):
    pass


class Notice(NotificationsTable, table=True):
    __tablename__ = "notifications_notice"
    __table_args__ = (Index("ix_notifications_notice_login_seq", "login", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)  # arrival order: "oldest first"
    id: str = Field(unique=True, max_length=64)
    login: str = Field(max_length=64)
    type: str = Field(max_length=32)
    text: str = Field(sa_type=Text)
    order_id: str | None = Field(default=None, max_length=64)
    event_id: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)


metadata = NotificationsTable.metadata
messaging = messaging_tables(metadata, "notifications")
notices = Notice.__table__  # type: ignore[attr-defined]
