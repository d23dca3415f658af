"""Money at the edge: what amounts are accepted, in which units they come out, and how they are shown."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.money import AMOUNT_SCHEMA, MAX_MINOR, parse_money, positive_money, to_number, to_text


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        (0.1, 10),
        ("0.10", 10),
        (10.1, 1010),
        (1e2, 10_000),
        ("1E2", 10_000),
        (700, 70_000),
        ("700", 70_000),
        (0.29, 29),  # 0.29 * 100 is 28.999999999999996 as a float: parsing must not multiply floats
        (1.15, 115),
        ("5.", 500),
        (".5", 50),
        (" 12.34 ", 1234),
        (Decimal("3.30"), 330),
        (1_000_000_000, MAX_MINOR),
        ("1000000000.00", MAX_MINOR),
    ],
)
def test_positive_amounts_become_exact_minor_units(value: Any, minor: int) -> None:
    assert parse_money(value) == minor
    assert positive_money(value) == minor


@pytest.mark.parametrize(
    "value",
    [
        0.001,
        "1.005",
        1e-3,
        0.1 + 0.2,  # 0.30000000000000004: the float carries more digits than any client wrote
        "abc",
        "",
        " ",
        "1,5",
        "1.2.3",
        "0x10",
        "NaN",
        "Infinity",
        "1e400",
        "1" * 41,
        True,
        False,
        None,
        [1],
        {"amount": 1},
        float("nan"),
        float("inf"),
        float("-inf"),
        1e400,
        Decimal("NaN"),
        Decimal("Infinity"),
    ],
)
def test_what_is_not_an_amount_of_money_is_rejected(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_money(value)
    with pytest.raises(ValueError):
        positive_money(value)


@pytest.mark.parametrize("value", [0, 0.0, "0", "0.00", -1, -0.01, "-5", 1_000_000_000.01, "1000000000.01"])
def test_positive_money_rejects_zero_negative_and_above_a_billion(value: Any) -> None:
    parse_money(value)
    with pytest.raises(ValueError):
        positive_money(value)


def test_negative_amounts_parse_to_negative_minor_units() -> None:
    assert parse_money(-12.5) == -1250
    assert parse_money("-0.01") == -1


@pytest.mark.parametrize(
    ("minor", "number", "text"),
    [
        (0, 0.0, "0.00"),
        (5, 0.05, "0.05"),
        (10, 0.1, "0.10"),
        (70_000, 700.0, "700.00"),
        (123_456, 1234.56, "1234.56"),
        (-5, -0.05, "-0.05"),
        (-1250, -12.5, "-12.50"),
        (MAX_MINOR, 1_000_000_000.0, "1000000000.00"),
        (MAX_MINOR + 1, 1_000_000_000.01, "1000000000.01"),
    ],
)
def test_minor_units_are_shown_as_a_json_number_and_as_text(minor: int, number: float, text: str) -> None:
    assert to_number(minor) == number
    assert to_text(minor) == text


@pytest.mark.parametrize("minor", [1, 9, 10, 99, 101, 29, 115, 1005, 99_999, 4_294_967_297, MAX_MINOR - 1])
def test_a_number_shown_parses_back_to_the_same_minor_units(minor: int) -> None:
    assert parse_money(to_number(minor)) == minor
    assert parse_money(to_text(minor)) == minor


# -- the document's word for the same rule ------------------------------------------------------

AMOUNT = jsonschema_rs.validator_for(AMOUNT_SCHEMA)
PLAIN = re.compile(r"^\+?([0-9]+(\.[0-9]{0,2})?|\.[0-9]{1,2})$")  # no exponent, no third fraction digit


def _taken(value: Any) -> bool:
    try:
        positive_money(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "value",
    [0.1, "0.10", 10.1, 700, "700", 0.29, 1.15, "5.", ".5", " 12.34 ", 1_000_000_000, "1000000000.00"],
)
def test_the_schema_takes_what_the_app_takes(value: Any) -> None:
    assert AMOUNT.is_valid(value) and _taken(value)


@pytest.mark.parametrize(
    "value",
    [
        0,
        "0.00",
        -1,
        "-5",
        0.001,
        "1.005",
        0.1 + 0.2,
        1_000_000_000.01,
        "abc",
        "",
        " ",
        "1,5",
        "٣",
        True,
        None,
    ],
)
def test_the_schema_refuses_what_the_app_refuses(value: Any) -> None:
    assert not AMOUNT.is_valid(value) and not _taken(value)


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.integers(-10, 2_000_000_000),
        st.floats(-1e10, 1e10, allow_nan=False),
        st.decimals(-1e10, 1e10, places=3, allow_nan=False).map(lambda d: float(d)),
        st.from_regex(r"\A[ +\-]?[0-9]{0,11}(\.[0-9]{0,3})?[ ]?\Z"),
    )
)
def test_what_the_schema_takes_the_app_takes_and_plain_amounts_agree(value: Any) -> None:
    if AMOUNT.is_valid(value):
        assert _taken(value), value
    # numbers, and text without an exponent or a third fraction digit: the two say the same
    if isinstance(value, int | float) or PLAIN.match(value.strip()):
        assert AMOUNT.is_valid(value) == _taken(value), value
