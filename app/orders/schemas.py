from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, computed_field
from pydantic.alias_generators import to_camel

from app.edge.fields import NOT_BLANK, Amount, Login, Money
from app.money import to_number


def _whole_number(value: object) -> int:
    """A JSON integer, 3 or 3.0 (one number to JSON and to its schema's "integer"); not "3", not true."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    return int(value)


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NOT_BLANK)
    ]
    quantity: Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_whole_number)]
    price: Amount


_GIVEN: dict[str, Any] = {"not": {"type": "null"}}
# the document's half of the rule app/orders/service.py order_total keeps: `price` or `items`, not
# neither. Both are taken when the price is the items' total, which JSON Schema cannot say: it says one
ONE_OF_PRICE_AND_ITEMS: dict[str, Any] = {
    "anyOf": [
        {"required": ["price"], "properties": {"price": _GIVEN}},
        {"required": ["items"], "properties": {"items": _GIVEN}},
    ],
    "not": {"required": ["price", "items"], "properties": {"price": _GIVEN, "items": _GIVEN}},
    "description": "`price`, or `items` (the price is then their total, at most 1000000000); both only "
    "when `price` is the items' total",
}


class CreateOrder(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        json_schema_extra=ONE_OF_PRICE_AND_ITEMS,
    )

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
