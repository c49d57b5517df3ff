"""Identifiers: prefixed, time-ordered, URL-safe (``ord_…``, ``rfd_…``, ``evt_…``).

An id is the second it was made, then random characters. The time comes first so that
rows made one after another sit next to one another in every index that holds their id
(the primary keys, ``events.order_id``, ``payments.order_id``, the provider numbers): an
insert then touches the index's newest pages, not a random one. On PostgreSQL that is what
keeps the write-ahead log small after each checkpoint, when the first change of a page
logs the whole page: measured with 300,000 orders, a checkout logged 27–31 KB with random
ids and 9–11 KB with these (``docs/performance.md``, round 13).

The time part is the Unix time in seconds, 7 characters of ``0-9a-z`` (base 36, good
until the year 4400), which sort in time order under any collation that orders digits
before lower-case letters, SQLite's and PostgreSQL's ``C`` and ``en_US`` alike. It tells
anyone who sees an id the second it was made (an order's ``created_at`` is in its view
anyway). The rest is uniformly random over ``[0-9A-Za-z]``: 13 characters (77 bits) in
an id, 19 (113 bits) in a provider number, so two ids made in the same second on any
number of replicas do not collide, and none can be guessed from another.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TIME_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
#: Characters of the time part.
TIME_CHARS = 7


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


def _time_chars(seconds: float | None = None) -> str:
    """The Unix time in whole seconds, as :data:`TIME_CHARS` base-36 characters."""
    value = int(time.time() if seconds is None else seconds)
    out = []
    for _ in range(TIME_CHARS):
        value, digit = divmod(value, 36)
        out.append(_TIME_ALPHABET[digit])
    return "".join(reversed(out))


def new_id(prefix: str, length: int = 20) -> str:
    """A time-ordered identifier such as ``ord_0tqk9sbX3kT9…``: ``length`` characters
    after the prefix, the first :data:`TIME_CHARS` of them the time (at least 8 random
    characters remain: ``length`` ≥ 15)."""
    if length < TIME_CHARS + 8:
        raise ValueError(f"an id needs at least {TIME_CHARS + 8} characters")
    return f"{prefix}_{_time_chars()}{_random_chars(length - TIME_CHARS)}"


def provider_number(prefix: str = "MG") -> str:
    """A provider-side order or refund number: 28 chars of ``[0-9A-Za-z]``, time-ordered
    like :func:`new_id` (the prefix, 7 of time, 19 random).

    It fits every provider's rules at once (WeChat ``out_trade_no`` 6–32 of
    ``[0-9A-Za-z_-|*]``, CBTIS ``merchant_order_id`` ≤ 32, QFPay ≤ 128).
    """
    return prefix + _time_chars() + _random_chars(26 - TIME_CHARS)


def new_secret(nbytes: int = 24) -> str:
    """A URL-safe random secret (API keys, client tokens)."""
    return secrets.token_urlsafe(nbytes)
