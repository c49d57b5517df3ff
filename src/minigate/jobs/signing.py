"""Merchant webhook signatures: ``Minigate-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]``.

``v1`` = hex HMAC-SHA256(secret, ``"<t>.<body>"``). While a secret rotates, one ``v1`` per
active secret is sent, so the merchant can verify with either the old or the new one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "Minigate-Signature"
DEFAULT_TOLERANCE = 300


def sign(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    parts += [f"v1={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}" for s in secrets]
    return ",".join(parts)


def verify(
    header: str, body: bytes, secret: str, now: int, tolerance: int = DEFAULT_TOLERANCE
) -> bool:
    """What a merchant does on receipt: raw body, constant-time, timestamp window."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)
