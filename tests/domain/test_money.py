from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigate.domain.money import Money, MoneyError, format_minor, minor_from_decimal, parse_minor


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12.30", "NZD", 1230), ("0.01", "NZD", 1), ("12", "NZD", 1200), ("12.3", "NZD", 1230),
    ("1500", "JPY", 1500), ("0", "USD", 0),
])
def test_parse(text: str, currency: str, minor: int) -> None:
    assert parse_minor(text, currency) == minor


@pytest.mark.parametrize("text", ["12.345", "1e3", "-1", " 5", "5 ", "NaN", "", "1,00",
                                  "01.00", "+1", "1.", ".5", "١٢"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_minor(text, "NZD")


def test_jpy_has_no_decimals() -> None:
    with pytest.raises(MoneyError):
        parse_minor("10.5", "JPY")
    assert format_minor(1500, "JPY") == "1500"


def test_unknown_currency() -> None:
    with pytest.raises(MoneyError) as err:
        Money(1, "XYZ")
    assert err.value.param == "currency"


def test_money_arithmetic_keeps_currency() -> None:
    assert Money(100, "NZD") + Money(5, "NZD") == Money(105, "NZD")
    with pytest.raises(MoneyError):
        Money(100, "NZD") - Money(5, "AUD")


def test_decimal_conversion_is_exact() -> None:
    assert minor_from_decimal(Decimal("120.00"), "NZD") == 12000
    with pytest.raises(MoneyError):
        minor_from_decimal(Decimal("0.001"), "NZD")


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["NZD", "JPY", "CNY"]))
def test_format_parse_round_trip(minor: int, currency: str) -> None:
    assert parse_minor(format_minor(minor, currency), currency) == minor
