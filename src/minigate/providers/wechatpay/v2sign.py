"""WeChat Pay API v2 signatures (also used for v2-style ``paySign`` by PSPs that resell it).

Rule: non-empty parameters except ``sign``, sorted by name (ASCII), joined ``k=v&…``, then
``&key=KEY``; MD5 or HMAC-SHA256 (keyed with KEY), upper-case hex.
"""

from __future__ import annotations

import base64
import binascii
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


def signatures_match(params: Mapping[str, object], key: str, sign_type: str) -> bool:
    """:func:`verify` for a ``sign_type`` read from the message itself (notifications):
    only the two documented algorithms are accepted; the comparison is constant-time."""
    return sign_type in (MD5, HMAC_SHA256) and verify(params, key, sign_type)


def _req_info_key(key: str) -> bytes:
    # WeChat's rule: the AES-256 key is the lower-case hex MD5 of the APIv2 key (32 ASCII bytes).
    return hashlib.md5(key.encode()).hexdigest().encode()  # noqa: S324 - WeChat v2's own rule


def decrypt_req_info(req_info: str, key: str) -> bytes:
    """Decrypt a v2 refund notification's ``req_info``: base64 → AES-256-ECB → PKCS#7.

    Raises :class:`ValueError` when it is not valid base64, not a whole number of blocks,
    or the padding is wrong (i.e. it was not encrypted with this key).
    """
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        data = base64.b64decode(req_info, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("req_info is not base64") from exc
    if not data or len(data) % 16:
        raise ValueError("req_info is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(_req_info_key(key)), modes.ECB()).decryptor()  # noqa: S305
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def encrypt_req_info(plaintext: bytes, key: str) -> str:
    """The inverse of :func:`decrypt_req_info` (the sandbox simulator uses it)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_req_info_key(key)), modes.ECB()).encryptor()  # noqa: S305
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
