from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict

from app.bus import Event


class PersonRegistered(Event):
    TYPE: ClassVar[str] = "person.registered.v1"
    # payloads as emitted (model_dump): the contract test parses each with every consumer's model
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "person_id": "6f1c2a9e0d3b4c5e8f7a6b5c4d3e2f10",
                    "login": "alice",
                    "email": "alice@example.com",
                    "first_name": "Alice",
                    "last_name": "Liddell",
                },
                {
                    "person_id": "0a9b8c7d6e5f40312a3b4c5d6e7f8091",
                    "login": "bob_42",
                    "email": "bob@example.org",
                    "first_name": None,
                    "last_name": None,
                },
            ]
        }
    )

    person_id: str
    login: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
