from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel

from app.edge.fields import Amount, Login, Money

OPERATION_ALIASES = {
    "deposit": "deposit",
    "refill": "deposit",
    "top-up": "deposit",
    "credit": "deposit",
    "withdraw": "withdraw",
    "withdrawal": "withdraw",
    "debit": "withdraw",
}

Kind = Literal["deposit", "withdraw"]


class OperationBody(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    login: Login
    operation: Kind
    sum: Amount

    @field_validator("operation", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in OPERATION_ALIASES:
            return OPERATION_ALIASES[value.lower()]
        if isinstance(value, str):
            raise ValueError(f"must be one of {', '.join(OPERATION_ALIASES)}")
        return value


class OperationResult(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    login: str
    operation: Kind
    sum: Money
    balance: Money
    operation_id: str


class Balance(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    login: str
    balance: Money
    updated_at: datetime
