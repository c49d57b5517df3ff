"""CBTIS webhook signatures (ASSUMED, modelled on Airwallex; see :mod:`.assumptions` A11).

``x-signature`` = lower-case hex HMAC-SHA256(webhook secret, ``x-timestamp`` + raw body).
"""

from __future__ import annotations

import hashlib
import hmac


def webhook_signature(secret: str, timestamp: str, raw_body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + raw_body, hashlib.sha256).hexdigest()


def signatures_match(expected: str, received: str | None) -> bool:
    """Constant-time, case-insensitive hex comparison."""
    if not received:
        return False
    return hmac.compare_digest(expected.lower().encode(), received.strip().lower().encode())
