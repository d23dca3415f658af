from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field
from pydantic.alias_generators import to_camel

from app.edge.fields import Amount, Login, Money
from app.money import to_number


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    quantity: Annotated[int, Field(ge=1, le=1_000_000, strict=True)]
    price: Amount


class CreateOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    login: Login
    price: Amount | None = None
    items: Annotated[list[Item], Field(min_length=1, max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None


class OrderOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    login: str
    price: Money
    status: str
    reason: str | None
    description: str | None = None
    items: list[dict[str, Any]] | None = None
    created_at: datetime
    settled_at: datetime | None

    @computed_field(alias="isPaid")  # type: ignore[prop-decorator]
    @property
    def is_paid(self) -> bool | None:
        # unknown while pending: never a false "not paid" before billing has answered
        return None if self.status == "pending" else self.status == "paid"

    @classmethod
    def from_row(cls, row: Any) -> OrderOut:
        items = (
            [{**i, "price": to_number(i["price"])} for i in orjson.loads(row.items)] if row.items else None
        )
        return cls(
            id=row.id,
            login=row.login,
            price=row.price,
            status=row.status,
            reason=row.reason,
            description=row.description,
            items=items,
            created_at=row.created_at,
            settled_at=row.settled_at,
        )


class OrderList(BaseModel):
    orders: list[OrderOut]
