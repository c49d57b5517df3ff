"""Identifiers: prefixed, random, URL-safe (``ord_…``, ``rfd_…``, ``evt_…``)."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str, length: int = 20) -> str:
    """A random identifier such as ``ord_3kT9…`` (about 119 bits for the default length)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def provider_number(prefix: str = "MG") -> str:
    """A provider-side order or refund number: 28 chars of ``[0-9A-Za-z]``.

    It fits every provider's rules at once (WeChat ``out_trade_no`` 6–32 of
    ``[0-9A-Za-z_-|*]``, CBTIS ``merchant_order_id`` ≤ 32, QFPay ≤ 128).
    """
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(26))


def new_secret(nbytes: int = 24) -> str:
    """A URL-safe random secret (API keys, client tokens)."""
    return secrets.token_urlsafe(nbytes)
