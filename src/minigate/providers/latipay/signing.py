"""Latipay's two HMAC-SHA256 rules (lower-case hex, key = the wallet's api_key).

* Requests: every non-empty parameter except ``signature``/``api_key``, sorted by name,
  joined ``k=v&…`` with raw values (no URL-encoding), then the api_key appended.
* Notifications and query responses: the plain concatenation
  ``merchant_reference + payment_method + status + currency + amount`` (no separators,
  no api_key suffix).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def request_message(params: Mapping[str, object], api_key: str) -> str:
    """The string Latipay signs for a request (vectors L1–L8 in providers.md §1.10)."""
    items = sorted(
        (k, v) for k, v in params.items()
        if v is not None and v != "" and k not in ("signature", "api_key")
    )
    return "&".join(f"{k}={v}" for k, v in items) + api_key


def hmac_hex(api_key: str, message: str) -> str:
    return hmac.new(api_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_request(params: Mapping[str, object], api_key: str) -> str:
    return hmac_hex(api_key, request_message(params, api_key))


def result_signature(
    api_key: str, merchant_reference: str, payment_method: str, status: str, currency: str,
    amount: str,
) -> str:
    """Signature of a notification or query response."""
    return hmac_hex(api_key, merchant_reference + payment_method + status + currency + amount)


def signatures_match(expected: str, received: str) -> bool:
    """Constant-time comparison; Latipay signs in lower-case hex."""
    return hmac.compare_digest(expected.encode(), received.strip().encode())
