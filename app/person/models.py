from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from app.messaging.tables import messaging_tables
from app.storage.types import UtcDateTime


class PersonTable(SQLModel, registry=registry()):
    pass


class Person(PersonTable, table=True):
    __tablename__ = "person_person"

    id: str = Field(primary_key=True, max_length=64)
    login: str = Field(unique=True, max_length=64)
    email: str = Field(max_length=254)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    password_hash: str | None = Field(default=None, max_length=255)  # argon2id; never leaves the module
    created_at: datetime = Field(sa_type=UtcDateTime)


metadata = PersonTable.metadata
messaging = messaging_tables(metadata, "person")
