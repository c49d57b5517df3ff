"""Identifiers: prefixed, random, URL-safe (``ord_…``, ``rfd_…``, ``evt_…``)."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _random_chars(length: int) -> str:
    """``length`` characters of ``_ALPHABET``, uniformly random (each id costs one call to
    the OS's CSPRNG, not one per character: ids are made on every notification).

    A random integer below ``62 ** length`` (rejection sampling, so no character is more
    likely than another), written in base 62 with leading zeros."""
    limit = 62 ** length
    nbytes = (limit.bit_length() + 7) // 8 + 1  # a spare byte: rejection is rare
    while True:
        value = int.from_bytes(secrets.token_bytes(nbytes), "big")
        if value < limit * (256 ** nbytes // limit):  # the largest multiple of limit
            value %= limit
            break
    out = []
    for _ in range(length):
        value, digit = divmod(value, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def new_id(prefix: str, length: int = 20) -> str:
    """A random identifier such as ``ord_3kT9…`` (about 119 bits for the default length)."""
    return f"{prefix}_{_random_chars(length)}"


def provider_number(prefix: str = "MG") -> str:
    """A provider-side order or refund number: 28 chars of ``[0-9A-Za-z]``.

    It fits every provider's rules at once (WeChat ``out_trade_no`` 6–32 of
    ``[0-9A-Za-z_-|*]``, CBTIS ``merchant_order_id`` ≤ 32, QFPay ≤ 128).
    """
    return prefix + _random_chars(26)


def new_secret(nbytes: int = 24) -> str:
    """A URL-safe random secret (API keys, client tokens)."""
    return secrets.token_urlsafe(nbytes)
