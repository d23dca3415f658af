"""Money at the edge: decimals with at most two fraction digits in, integer minor units inside.

:func:`parse_money` is the one rule; :data:`AMOUNT_SCHEMA` says it in the OpenAPI document (a JSON
number > 0, at most 1,000,000,000, a multiple of 0.01; or the same as plain decimal text), so a client,
a generator or a fuzzer knows what is taken before it asks."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

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


def parse_money(value: Any) -> int:
    """JSON number or decimal string -> integer minor units. Raises ValueError on anything else.

    A JSON number arrives as a float; ``repr`` gives its shortest exact decimal text, which is what
    the client wrote for every amount of <= 15 significant digits (all valid sums here)."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        text = repr(value)
    elif isinstance(value, str):
        if not _DECIMAL.match(value) or len(value) > 40:
            raise ValueError("must be a decimal number")
        text = value.strip()
    elif isinstance(value, Decimal):
        text = str(value)
    else:
        raise ValueError("must be a number")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError("must be a decimal number") from exc
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if abs(amount.adjusted()) > 30:
        raise ValueError("is out of range")
    minor = amount.scaleb(2)
    if minor != minor.to_integral_value():
        raise ValueError("has more than 2 fraction digits")
    return int(minor)


def positive_money(value: Any) -> int:
    minor = parse_money(value)
    if minor <= 0:
        raise ValueError("must be greater than 0")
    if minor > MAX_MINOR:
        raise ValueError("must be at most 1000000000")
    return minor


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
