"""QFPay's two signature rules (providers.md §2.2 and §2.8), upper-case hex.

* Requests: every non-empty parameter, sorted by name (ASCII), joined ``k=v&…`` with the raw
  values exactly as they go into the form body (no URL-encoding), then the ``client_key``
  appended directly (no ``&``, no ``key=``); MD5 (default) or SHA256. Sent in ``X-QF-SIGN``
  with ``X-QF-SIGNTYPE``.
* Notifications: MD5 of the **raw body bytes** followed by the ``client_key``. Never a
  re-serialised dict: QFPay's JSON spacing (``", "``/``": "``) is part of what is signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

MD5 = "MD5"
SHA256 = "SHA256"
SIGN_TYPES = frozenset({MD5, SHA256})


def string_to_sign(params: Mapping[str, object], client_key: str) -> str:
    """The exact text QFPay hashes for a request (vectors Q1/Q2 in providers.md §2.11)."""
    items = sorted((k, v) for k, v in params.items() if v is not None and v != "")
    return "&".join(f"{k}={v}" for k, v in items) + client_key


def _digest(data: bytes, sign_type: str) -> str:
    if sign_type == MD5:
        return hashlib.md5(data).hexdigest().upper()  # noqa: S324 - QFPay's own rule
    if sign_type == SHA256:
        return hashlib.sha256(data).hexdigest().upper()
    raise ValueError(f"unsupported QFPay sign type {sign_type!r}")


def sign(params: Mapping[str, object], client_key: str, sign_type: str = MD5) -> str:
    """``X-QF-SIGN`` for a request whose form body holds exactly ``params``."""
    return _digest(string_to_sign(params, client_key).encode(), sign_type)


def notification_signature(raw_body: bytes, client_key: str) -> str:
    """``X-QF-SIGN`` of a notification: MD5 over the raw body bytes + client_key."""
    return _digest(raw_body + client_key.encode(), MD5)


def signatures_match(expected: str, received: str | None) -> bool:
    """Constant-time and case-insensitive: some QFPay samples send lower-case hex."""
    if not received:
        return False
    return hmac.compare_digest(expected.upper().encode(), received.strip().upper().encode())
