"""WeChat Pay API v2 signatures (also used for v2-style ``paySign`` by PSPs that resell it).

Rule: non-empty parameters except ``sign``, sorted by name (ASCII), joined ``k=v&…``, then
``&key=KEY``; MD5 or HMAC-SHA256 (keyed with KEY), upper-case hex.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"


def string_to_sign(params: Mapping[str, object], key: str) -> str:
    items = sorted((k, v) for k, v in params.items() if k != "sign" and v not in (None, ""))
    return "&".join(f"{k}={v}" for k, v in items) + f"&key={key}"


def sign(params: Mapping[str, object], key: str, sign_type: str = MD5) -> str:
    text = string_to_sign(params, key).encode()
    if sign_type == MD5:
        return hashlib.md5(text).hexdigest().upper()  # noqa: S324 - WeChat v2's own rule
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode(), text, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unsupported sign_type {sign_type!r}")


def verify(params: Mapping[str, object], key: str, sign_type: str = MD5) -> bool:
    received = params.get("sign")
    if not isinstance(received, str) or not received:
        return False
    try:
        expected = sign(params, key, sign_type)
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode(), received.encode())


def pay_sign_params(app_id: str, time_stamp: str, nonce_str: str, package: str,
                    sign_type: str) -> dict[str, str]:
    """The five fields a v2 ``paySign`` covers (note the capital I in appId)."""
    return {"appId": app_id, "timeStamp": time_stamp, "nonceStr": nonce_str,
            "package": package, "signType": sign_type}
