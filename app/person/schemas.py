from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

from app.edge.fields import NOT_BLANK, WHITESPACE, Login

_NO_AT_OR_SPACE = rf"[^@{WHITESPACE}\ufeff]"  # \ufeff: ECMA's \s has it, so it was refused there too
Email = Annotated[
    str,
    StringConstraints(
        pattern=rf"^{_NO_AT_OR_SPACE}{{1,64}}@{_NO_AT_OR_SPACE}+\.{_NO_AT_OR_SPACE}+$", max_length=254
    ),
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NOT_BLANK)
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{3,32}$")]


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    login: Login
    email: Email
    first_name: Name | None = None
    last_name: Name | None = None
    phone: Phone | None = None
    password: Password


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Login
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Token(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class Profile(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    id: str
    login: str
    email: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    created_at: datetime
