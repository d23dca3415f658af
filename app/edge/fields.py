"""Field types the HTTP schemas of every module share."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from app.money import Amount, Money

LOGIN_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"
Login = Annotated[str, StringConstraints(pattern=LOGIN_PATTERN)]

__all__ = ["LOGIN_PATTERN", "Amount", "Login", "Money"]
