"""Key material of the simulated WeChat Pay, generated once per process, never stored.

The same :class:`SandboxWechatKeys` goes to both sides in sandbox mode: the simulator
(WeChat's platform certificate and public-key-ID key, and the merchant's public key to
check request signatures) and minigate's own settings (the merchant's private key, the
WeChat Pay public key). Nothing here is a secret: it only opens the simulators.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from minigate.providers.wechatpay.keys import serial_hex


@dataclass(frozen=True)
class SandboxWechatKeys:
    merchant_key: rsa.RSAPrivateKey
    merchant_serial: str
    platform_key: rsa.RSAPrivateKey
    platform_cert_pem: bytes
    platform_serial: str
    public_key: rsa.RSAPrivateKey  # the "WeChat Pay public key" mode's key pair
    public_key_id: str

    def merchant_key_pem(self) -> str:
        return self.merchant_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()

    def public_key_pem(self) -> str:
        return self.public_key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def __repr__(self) -> str:
        return f"SandboxWechatKeys(merchant_serial={self.merchant_serial!r})"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    """A platform certificate like WeChat's (5-year validity), signed by its own key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=5 * 365))
            .sign(key, hashes.SHA256()))


@functools.cache
def sandbox_wechat_keys() -> SandboxWechatKeys:
    """This process's keys (generated on first use: RSA generation takes a moment)."""
    platform_key = _rsa()
    cert = self_signed_certificate(platform_key, "Tenpay.com Root CA (sandbox)")
    return SandboxWechatKeys(
        merchant_key=_rsa(), merchant_serial=secrets.token_hex(20).upper(),
        platform_key=platform_key,
        platform_cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        platform_serial=serial_hex(cert.serial_number),
        public_key=_rsa(), public_key_id="PUB_KEY_ID_" + "".join(
            secrets.choice("0123456789") for _ in range(32)),
    )
