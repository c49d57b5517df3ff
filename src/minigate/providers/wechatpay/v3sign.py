"""WeChat Pay API v3 signatures and encryption (pure; time and nonces are passed in).

* Requests: SHA256withRSA (PKCS#1 v1.5) with the merchant's API private key over
  ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``, sent in the ``Authorization`` header
  with the merchant certificate's serial.
* ``wx.requestPayment``: the same algorithm over ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``.
* Responses and notifications: WeChat signs ``TIMESTAMP\\nNONCE\\nBODY\\n``; the key is
  chosen by ``Wechatpay-Serial`` from a :class:`KeyRing` holding the WeChat Pay public key
  (``PUB_KEY_ID_…``) and/or platform certificates (hex serials): both during a migration.
* Resources (notifications, ``/v3/certificates``): AEAD_AES_256_GCM with the APIv3 key.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
#: WeChat sends deliberately wrong signatures with this prefix to check merchants verify.
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
#: Replay window for response and notification timestamps (seconds).
MAX_SKEW = 300
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"


class SignatureRejected(ValueError):
    """A response or notification whose signature does not hold.

    ``unknown_serial`` is True when the only problem is that we hold no key for the
    serial: the caller may refresh its platform certificates once and try again.
    """

    def __init__(self, reason: str, *, unknown_serial: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown_serial = unknown_serial


def request_message(method: str, path_and_query: str, timestamp: str, nonce: str,
                    body: bytes) -> bytes:
    """The five lines a v3 request signature covers (``body`` = the exact bytes sent)."""
    head = f"{method.upper()}\n{path_and_query}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The three lines WeChat signs in responses and notifications."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def pay_sign_message(app_id: str, time_stamp: str, nonce_str: str, package: str) -> bytes:
    return f"{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n".encode()


def rsa_sign(private_key: RSAPrivateKey, message: bytes) -> str:
    """base64(SHA256withRSA(PKCS#1 v1.5))."""
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_verify(public_key: RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def authorization(mchid: str, serial_no: str, nonce: str, timestamp: str, signature: str) -> str:
    """The ``Authorization`` header value."""
    return (f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


_AUTH_ITEM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


def parse_authorization(header: str) -> dict[str, str] | None:
    """The five items of an ``Authorization`` header, or None when it is malformed."""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        return None
    items: dict[str, str] = {}
    for part in rest.split(","):
        match = _AUTH_ITEM.fullmatch(part)
        if match is None or match.group(1) in items:
            return None
        items[match.group(1)] = match.group(2)
    wanted = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    return items if set(items) == wanted else None


@dataclass
class KeyRing:
    """WeChat's verification keys by serial: a public key ID and/or platform certificates."""

    keys: dict[str, RSAPublicKey] = field(default_factory=dict)

    def add(self, serial: str, key: RSAPublicKey) -> None:
        self.keys[_normal_serial(serial)] = key

    def add_all(self, entries: Iterable[tuple[str, RSAPublicKey]]) -> None:
        for serial, key in entries:
            self.add(serial, key)

    def get(self, serial: str) -> RSAPublicKey | None:
        return self.keys.get(_normal_serial(serial))


def _normal_serial(serial: str) -> str:
    """Certificate serials are hex (any case); a public-key ID is taken verbatim."""
    return serial if serial.startswith(PUBLIC_KEY_ID_PREFIX) else serial.upper()


def verify_signed(headers: Mapping[str, str], body: bytes, ring: KeyRing, now: int,
                  max_skew: int = MAX_SKEW) -> str:
    """Check ``Wechatpay-*`` headers (lower-case names) over ``body``; return the serial.

    Order matters: probes and stale timestamps are refused before any key lookup, so an
    unknown serial can never be used to make us refresh certificates for a replayed body.
    """
    timestamp = headers.get("wechatpay-timestamp", "")
    nonce = headers.get("wechatpay-nonce", "")
    signature = headers.get("wechatpay-signature", "")
    serial = headers.get("wechatpay-serial", "")
    if not (timestamp and nonce and signature and serial):
        raise SignatureRejected("Wechatpay-Timestamp/Nonce/Signature/Serial headers missing")
    if signature.startswith(SIGNTEST_PREFIX):
        raise SignatureRejected("signature probe (WECHATPAY/SIGNTEST/) answered as failure")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > max_skew:
        raise SignatureRejected("Wechatpay-Timestamp outside the 5-minute window")
    key = ring.get(serial)
    if key is None:
        raise SignatureRejected(f"no key for Wechatpay-Serial {serial}", unknown_serial=True)
    if not rsa_verify(key, response_message(timestamp, nonce, body), signature):
        raise SignatureRejected("Wechatpay-Signature does not verify")
    return serial


def aes_gcm_decrypt(apiv3_key: str, nonce: str, associated_data: str,
                    ciphertext_b64: str) -> bytes:
    """AEAD_AES_256_GCM: key = the 32-byte APIv3 key, nonce and AAD used as raw strings."""
    key = apiv3_key.encode()
    if len(key) != 32:
        raise ValueError("the APIv3 key must be 32 bytes")
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        return AESGCM(key).decrypt(nonce.encode(), data, associated_data.encode())
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise ValueError("resource does not decrypt with the APIv3 key") from exc


def aes_gcm_encrypt(apiv3_key: str, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """The inverse of :func:`aes_gcm_decrypt` (the sandbox simulator uses it)."""
    data = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(data).decode()


def same_text(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
