from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema, field_validator
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


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# what the request takes: every alias, in any case (the reply says deposit or withdraw)
OPERATION_SCHEMA = {
    "type": "string",
    "pattern": f"^({'|'.join(_any_case(word) for word in OPERATION_ALIASES)})$",
    "description": "deposit or withdraw; also refill, top-up, credit, withdrawal, debit; in any case",
    "examples": ["deposit", "withdraw"],
}


class OperationBody(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    login: Login
    operation: Annotated[Kind, WithJsonSchema(OPERATION_SCHEMA, mode="validation")]
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
