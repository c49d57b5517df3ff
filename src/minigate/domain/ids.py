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


#: Random bytes → characters: each byte below 248 (4 × 62) stands for ``_ALPHABET[byte % 62]``
#: and the 8 above are dropped, so every character is equally likely (rejection sampling,
#: done by ``bytes.translate`` in C: an id is made on every notification and checkout).
_TO_CHAR = bytes.maketrans(bytes(range(248)), (_ALPHABET * 4).encode("ascii"))
_REJECTED = bytes(range(248, 256))
#: Spare bytes drawn per call: fewer than ``length`` survive only if more than this many of
#: ``length + _SPARE`` bytes are rejected (each with probability 1/32).
_SPARE = 8


def _random_chars(length: int) -> str:
    """``length`` characters of ``_ALPHABET``, uniformly random, from the OS's CSPRNG: one
    call for the whole string (almost always), not one per character."""
    out = b""
    while len(out) < length:
        out += secrets.token_bytes(length - len(out) + _SPARE).translate(_TO_CHAR, _REJECTED)
    return out[:length].decode("ascii")


#: The last second :func:`_time_chars` wrote, and its characters (ids are made many times
#: a second; the conversion is done once per second).
_last_second: tuple[int, str] = (-1, "")


def _time_chars(seconds: float | None = None) -> str:
    """The Unix time in whole seconds, as :data:`TIME_CHARS` base-36 characters."""
    global _last_second
    value = int(time.time() if seconds is None else seconds)
    last, chars = _last_second
    if value == last:
        return chars
    whole, out = value, []
    for _ in range(TIME_CHARS):
        whole, digit = divmod(whole, 36)
        out.append(_TIME_ALPHABET[digit])
    chars = "".join(reversed(out))
    _last_second = (value, chars)
    return chars


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
