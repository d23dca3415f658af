from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Message(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    type: str
    text: str
    order_id: str | None
    created_at: datetime


class Notices(BaseModel):
    login: str
    messages: list[Message]
