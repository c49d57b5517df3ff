"""PEM loading for WeChat Pay v3: the merchant's private key, WeChat Pay public keys and
platform certificates.

Keys arrive either inline (a PEM string from the settings) or as a path to a PEM file;
both end up as ``cryptography`` key objects here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey


class KeyLoadError(ValueError):
    """A key or certificate that cannot be loaded (the message never contains key bytes)."""


def pem_text(inline: str, path: str) -> bytes:
    """The PEM bytes from an inline value or, when that is empty, from a file."""
    if inline.strip():
        return inline.strip().encode()
    if path:
        return Path(path).read_bytes()
    raise KeyLoadError("no PEM given (neither inline nor path)")


def load_private_key(pem: bytes) -> RSAPrivateKey:
    """An RSA private key (PKCS#8 ``apiclient_key.pem`` or PKCS#1)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyLoadError("merchant private key is not a valid unencrypted PEM") from exc
    if not isinstance(key, RSAPrivateKey):
        raise KeyLoadError("merchant private key is not RSA")
    return key


def load_public_key(pem: bytes) -> RSAPublicKey:
    """An RSA public key PEM, or the public key of a certificate PEM."""
    key: object
    try:
        if b"CERTIFICATE" in pem:
            key = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise KeyLoadError("public key / certificate is not a valid PEM") from exc
    if not isinstance(key, RSAPublicKey):
        raise KeyLoadError("public key is not RSA")
    return key


@dataclass(frozen=True, slots=True)
class PlatformCertificate:
    """A WeChat Pay platform certificate: its serial (upper-case hex) and public key."""

    serial_no: str
    public_key: RSAPublicKey
    not_after: datetime | None = None

    def expired_at(self, when: datetime) -> bool:
        """Past its validity. (One not valid *yet* is kept: WeChat publishes the next
        certificate ahead of a rotation.)"""
        return self.not_after is not None and when > self.not_after


def load_certificate(pem: bytes) -> PlatformCertificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise KeyLoadError("platform certificate is not a valid PEM") from exc
    key = cert.public_key()
    if not isinstance(key, RSAPublicKey):
        raise KeyLoadError("platform certificate key is not RSA")
    return PlatformCertificate(serial_hex(cert.serial_number), key, cert.not_valid_after_utc)


def serial_hex(serial: int) -> str:
    """WeChat writes certificate serials as upper-case hex without separators."""
    return format(serial, "X")
