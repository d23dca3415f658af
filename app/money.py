"""Money at the edge: decimals with at most two fraction digits in, integer minor units inside.

:func:`positive_money` is the one rule (pydantic's constrained Decimal); :data:`AMOUNT_SCHEMA` says it
in the OpenAPI document (a JSON number > 0, at most 1,000,000,000, a multiple of 0.01; or the same as
plain decimal text), so a client, a generator or a fuzzer knows what is taken before it asks."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, TypeAdapter, ValidationError, WithJsonSchema

MAX_MINOR = 1_000_000_000 * 100
# what str.strip() takes off, spelled out: every regex engine (ECMA's in a client, Rust's in pydantic,
# Python's here) then reads the same set, where each one's own \s differs
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# ASCII digits only: Python's \d takes any script's, and Decimal("٣") is 3
_DECIMAL = re.compile(rf"^[{WHITESPACE}]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[{WHITESPACE}]*$")
# the amounts > 0 and <= 1,000,000,000 with at most two fraction digits, as plain text (what the
# document shows; parse_money also takes an exponent, e.g. "1E2", and trailing zeros, "1.500")
AMOUNT_TEXT = (
    rf"^[{WHITESPACE}]*\+?(0*[1-9][0-9]{{0,8}}(\.[0-9]{{0,2}})?|0*1000000000(\.0{{0,2}})?"
    rf"|0*\.(0[1-9]|[1-9][0-9]?))[{WHITESPACE}]*$"
)
AMOUNT_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000_000, "multipleOf": 0.01},
        {"type": "string", "pattern": AMOUNT_TEXT, "maxLength": 40},
    ],
    "description": "an amount of money: more than 0, at most 1000000000, at most two fraction digits; a "
    "JSON number or decimal text",
    "examples": [300, "1000.00"],
}


# the rule itself is pydantic's constrained Decimal: finite, at most two fraction digits (and, for an
# amount a client sends, more than 0 and at most 1,000,000,000); it answers the cases of
# tests/unit/test_money.py as the hand-written parser before it did (0.1 -> 10, "1.001" and 1.005
# refused, 0, -1, True, "nan", 1e300 refused, " 5 " -> 500)
_ANY = TypeAdapter(Annotated[Decimal, Field(allow_inf_nan=False, decimal_places=2)])
_POSITIVE = TypeAdapter(
    Annotated[Decimal, Field(gt=0, le=1_000_000_000, allow_inf_nan=False, decimal_places=2)]
)
# pydantic's error kinds in the API's words (they are what a 422's detail says)
_SAID = {
    "decimal_type": "must be a number",
    "finite_number": "must be a finite number",
    "decimal_max_places": "has more than 2 fraction digits",
    "greater_than": "must be greater than 0",
    "less_than_equal": "must be at most 1000000000",
}


def parse_money(value: Any) -> int:
    """JSON number or decimal text -> integer minor units (any sign). Raises ValueError otherwise."""
    return _minor(_ANY, value)


def positive_money(value: Any) -> int:
    """An amount a client sends: more than 0, at most 1,000,000,000, at most two fraction digits."""
    return _minor(_POSITIVE, value)


def _minor(rule: TypeAdapter[Decimal], value: Any) -> int:
    # text first meets the one pattern the OpenAPI document describes: ASCII digits, the spelled-out
    # whitespace (pydantic's own set differs from a client's regex engine), at most 40 characters
    if isinstance(value, str) and (len(value) > 40 or not _DECIMAL.match(value)):
        raise ValueError("must be a decimal number")
    if isinstance(value, float) and math.isfinite(value):
        # a JSON number arrives as a float: its shortest exact decimal text is what the client wrote
        # for every amount of <= 15 significant digits (all valid sums here)
        value = repr(value)
    try:
        amount = rule.validate_python(value)
    except ValidationError as exc:
        kind = exc.errors()[0]["type"]
        raise ValueError(_SAID.get(kind, "must be a decimal number")) from None
    if abs(amount.adjusted()) > 30:
        raise ValueError("is out of range")
    return int(amount.scaleb(2))


def to_number(minor: int) -> float:
    """Minor units -> a JSON number (formatting only: no arithmetic happens on the float)."""
    return float(Decimal(minor).scaleb(-2))


def to_text(minor: int) -> str:
    """Minor units -> "700.00" for human sentences."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


# HTTP bodies: a positive amount in, minor units inside, a JSON number out
Amount = Annotated[
    int,
    BeforeValidator(positive_money),
    PlainSerializer(to_number, return_type=float, when_used="json"),
    WithJsonSchema(AMOUNT_SCHEMA, mode="validation"),
]
# replies only: any amount (a balance may be 0)
Money = Annotated[int, PlainSerializer(to_number, return_type=float, when_used="json")]
