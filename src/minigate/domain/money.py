"""Exact money: integer minor units inside, decimal strings at the edges.

A float never touches an amount. Parsing is strict: ``"12.30"`` is fine for NZD,
``"12.345"`` is not (too many decimals for the currency), ``"1e3"``, ``"-1"``, ``" 5"``
and ``"NaN"`` are never accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# ISO 4217 minor-unit exponents for the currencies minigate's providers settle in.
# Unknown currencies are refused rather than guessed.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AUD": 2, "CAD": 2, "CHF": 2, "CNY": 2, "EUR": 2, "GBP": 2, "HKD": 2, "IDR": 2,
    "JPY": 0, "KRW": 0, "MOP": 2, "MYR": 2, "NZD": 2, "PHP": 2, "SGD": 2, "THB": 2,
    "TWD": 2, "USD": 2, "AED": 2, "MMK": 2, "VND": 0,
}

MAX_MINOR = 10**15  # far above any real payment; keeps amounts inside BIGINT
_AMOUNT_RE = re.compile(r"(0|[1-9][0-9]{0,15})(?:\.([0-9]+))?")


class MoneyError(ValueError):
    """An amount or currency that minigate will not accept."""

    def __init__(self, message: str, param: str = "amount") -> None:
        super().__init__(message)
        self.param = param


def exponent(currency: str) -> int:
    """The currency's number of minor-unit digits; raises for unknown currencies."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"unsupported currency {currency!r}", param="currency") from None


@dataclass(frozen=True, order=True, slots=True)
class Money:
    """An amount in integer minor units of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        exponent(self.currency)
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise MoneyError("amount must be an integer number of minor units")
        if self.minor < 0 or self.minor > MAX_MINOR:
            raise MoneyError("amount out of range")

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a decimal string such as ``"12.30"`` with the currency's exponent."""
        return cls(parse_minor(text, currency), currency)

    def decimal_str(self) -> str:
        """The amount as a decimal string with exactly the currency's digits (``"12.30"``)."""
        return format_minor(self.minor, self.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")


def parse_minor(text: str, currency: str) -> int:
    """Turn ``"12.30"`` into ``1230`` for a 2-digit currency; strict about the format."""
    exp = exponent(currency)
    if not isinstance(text, str):
        raise MoneyError("amount must be a decimal string such as \"12.30\"")
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        raise MoneyError(f"amount {text!r} is not a decimal string such as \"12.30\"")
    whole, frac = match.group(1), match.group(2) or ""
    if len(frac) > exp:
        raise MoneyError(f"amount {text!r} has more than {exp} decimal places for {currency}")
    minor: int = int(whole) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
    if minor > MAX_MINOR:
        raise MoneyError("amount out of range")
    return minor


def format_minor(minor: int, currency: str) -> str:
    """Turn ``1230`` into ``"12.30"`` for a 2-digit currency (``"1230"`` for JPY)."""
    exp = exponent(currency)
    if exp == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


def minor_from_decimal(value: Decimal, currency: str) -> int:
    """Exact conversion of a Decimal (e.g. a JSON number parsed as Decimal) to minor units."""
    exp = exponent(currency)
    scaled: Decimal = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"amount {value} has more than {exp} decimal places for {currency}")
    return int(scaled)
