from __future__ import annotations

from typing import ClassVar

from app.bus import Event


class PersonRegistered(Event):
    TYPE: ClassVar[str] = "person.registered.v1"

    person_id: str
    login: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
