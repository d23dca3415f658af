"""Money at the edge: decimals with at most two fraction digits in, integer minor units inside."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

MAX_MINOR = 1_000_000_000 * 100
_DECIMAL = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


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
    int, BeforeValidator(positive_money), PlainSerializer(to_number, return_type=float, when_used="json")
]
# replies only: any amount (a balance may be 0)
Money = Annotated[int, PlainSerializer(to_number, return_type=float, when_used="json")]
