"""Field types the HTTP schemas of every module share. Each says in the OpenAPI document what the app
takes, to the character: patterns spell their whitespace out, since ECMA, Rust and Python regexes each
read ``\\s`` their own way."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from app.money import WHITESPACE, Amount, Money

LOGIN_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"
Login = Annotated[str, StringConstraints(pattern=LOGIN_PATTERN)]
# Unicode White_Space: what strip_whitespace takes off (pydantic trims with Rust's str::trim)
TRIMMED = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# a character that is not trimmed away: a stripped text with min_length=1 has one
NOT_BLANK = rf"[^{TRIMMED}]"

__all__ = ["LOGIN_PATTERN", "NOT_BLANK", "TRIMMED", "WHITESPACE", "Amount", "Login", "Money"]
