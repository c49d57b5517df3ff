"""The sandbox's test credentials: per process, or kept in a keys directory.

Without a directory every process generates its own RSA keys (tests: nothing is written).
With one (``minigate sandbox --keys-dir DIR``, and ``minigate serve`` in sandbox mode), the
first run creates every simulated merchant's keys and certificates there and later runs
load them, so an outside client configured once keeps working across restarts, and
``minigate sandbox credentials`` can print them. PUBLIC TEST VALUES: they open only the
simulators, but files are still written 0600 in a 0700 directory, as real keys would be.

Layout (``merchant/`` is what a merchant holds; ``simulator/`` is WeChat's side)::

    credentials.json                    ids, API keys, serials (see SandboxCredentials)
    merchant/apiclient_key.pem          v3 merchant private key (also the v2 TLS client key)
    merchant/apiclient_cert.pem         merchant API certificate: its serial is the v3
                                        serial_no; the v2 refund client certificate
    merchant/wechatpay_public_key.pem   the WeChat Pay public key (id in credentials.json)
    merchant/platform-certs/<SERIAL>.pem  WeChat Pay platform certificate(s)
    merchant/sandbox-ca.pem             the CA of the sandbox's HTTPS server certificate
    simulator/*.pem                     the simulator's own private keys and server cert
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import secrets
import shutil
import string
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minigate.providers.wechatpay.keys import serial_hex
from minigate.sandbox import credentials as cred
from minigate.sandbox.wechat_keys import (
    SandboxWechatKeys,
    sandbox_wechat_keys,
    self_signed_certificate,
)

#: Where ``minigate serve`` (sandbox mode) and ``minigate sandbox`` keep them by default.
DEFAULT_KEYS_DIR = "./minigate-data/sandbox-keys"
FORMAT_VERSION = 1

MERCHANT_KEY = "merchant/apiclient_key.pem"
MERCHANT_CERT = "merchant/apiclient_cert.pem"
WECHATPAY_PUBLIC_KEY = "merchant/wechatpay_public_key.pem"
PLATFORM_CERTS = "merchant/platform-certs"
SANDBOX_CA = "merchant/sandbox-ca.pem"
PLATFORM_KEY = "simulator/platform_key.pem"
PUBLIC_KEY_PRIVATE = "simulator/wechatpay_public_key_private.pem"
SERVER_CERT = "simulator/server_cert.pem"
SERVER_KEY = "simulator/server_key.pem"
CA_KEY = "simulator/ca_key.pem"


class KeyStoreError(RuntimeError):
    """A keys directory that exists but cannot be used (the message says which file)."""


@dataclass(frozen=True)
class SandboxCredentials:
    """Every secret of every simulated merchant (identifiers are in :mod:`.credentials`)."""

    wechat: SandboxWechatKeys
    mini_app_secret: str
    wechatpay_apiv3_key: str
    wechatpay_apiv2_key: str
    latipay_api_key: str
    qfpay_client_key: str
    cbtis_api_key: str
    cbtis_webhook_secret: str
    #: The keys directory, or None when generated for this process only.
    directory: Path | None = None

    def file(self, name: str) -> Path | None:
        """A file of the keys directory (None without one)."""
        return self.directory / name if self.directory is not None else None

    @property
    def platform_cert_file(self) -> Path | None:
        d = self.file(PLATFORM_CERTS)
        return d / f"{self.wechat.platform_serial}.pem" if d is not None else None

    def __repr__(self) -> str:  # never print keys
        return f"SandboxCredentials(directory={self.directory!r})"


@functools.cache
def ephemeral_credentials() -> SandboxCredentials:
    """This process's credentials: the public constants and per-process RSA keys."""
    return with_wechat_keys(sandbox_wechat_keys())


def with_wechat_keys(keys: SandboxWechatKeys) -> SandboxCredentials:
    return SandboxCredentials(
        keys, cred.MINI_APP_SECRET, cred.WECHATPAY_APIV3_KEY, cred.WECHATPAY_APIV2_KEY,
        cred.LATIPAY_API_KEY, cred.QFPAY_CLIENT_KEY, cred.CBTIS_API_KEY,
        cred.CBTIS_WEBHOOK_SECRET)


def for_keys_dir(keys_dir: str) -> SandboxCredentials:
    """The settings' ``sandbox.keys_dir``: empty means this process's credentials."""
    return load_or_create(keys_dir) if keys_dir else ephemeral_credentials()


def load_or_create(directory: str | Path) -> SandboxCredentials:
    """The credentials kept in ``directory``, created there on first use.

    Creation happens in a private temporary directory next to it, renamed into place at
    the end: a crash leaves nothing half-written, and of two processes starting together
    one creates and the other loads what it created.
    """
    target = Path(directory).expanduser().resolve()
    if not (target / "credentials.json").is_file():
        if target.exists() and any(target.iterdir()):
            raise KeyStoreError(f"{target} exists but holds no credentials.json; "
                                "choose an empty or new directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".sandbox-keys-", dir=target.parent))
        try:
            _create(work)
            with contextlib.suppress(FileNotFoundError, OSError):
                target.rmdir()  # an empty directory the user made for us
            try:
                work.rename(target)
            except OSError:
                if not (target / "credentials.json").is_file():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _load(target)


# -- creation ------------------------------------------------------------------------------
def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _secret(length: int = 32) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(root: Path, name: str, data: bytes) -> None:
    path = root / name
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _issued(ca_key: rsa.RSAPrivateKey, ca: x509.Certificate, key: rsa.RSAPrivateKey,
            subject: x509.Name, usage: x509.ObjectIdentifier,
            names: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=1))
               .not_valid_after(now + timedelta(days=5 * 365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _create(root: Path) -> None:
    os.chmod(root, 0o700)
    pem = serialization.Encoding.PEM
    # The sandbox CA: it issues the HTTPS server certificate and the merchant certificate.
    ca_key = _rsa()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minigate sandbox CA")])
    now = datetime.now(UTC)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=10 * 365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    # The merchant API certificate, as WeChat issues it: CN = mchid.
    merchant_key = _rsa()
    merchant = _issued(ca_key, ca, merchant_key, x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cred.WECHATPAY_MCHID),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "WeChat Pay sandbox merchant")]),
        ExtendedKeyUsageOID.CLIENT_AUTH)
    server_key = _rsa()
    server = _issued(ca_key, ca, server_key, x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
         x509.IPAddress(ipaddress.ip_address("::1"))])
    platform_key = _rsa()
    platform = self_signed_certificate(platform_key, "Tenpay.com Root CA (sandbox)")
    public_key = _rsa()
    platform_serial = serial_hex(platform.serial_number)
    data: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "note": "minigate sandbox test credentials: they open only the simulators",
        "mini_app_secret": _secret(),
        "wechatpay": {
            "merchant_serial": serial_hex(merchant.serial_number),
            "platform_serial": platform_serial,
            "public_key_id": "PUB_KEY_ID_" + "".join(secrets.choice(string.digits)
                                                     for _ in range(32)),
            "apiv3_key": _secret(32), "apiv2_key": _secret(32),
        },
        "latipay": {"api_key": _secret()},
        "qfpay": {"client_key": _secret()},
        "cbtis": {"api_key": _secret(), "webhook_secret": _secret()},
    }
    _write(root, MERCHANT_KEY, _private_pem(merchant_key))
    _write(root, MERCHANT_CERT, merchant.public_bytes(pem))
    _write(root, WECHATPAY_PUBLIC_KEY, public_key.public_key().public_bytes(
        pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    _write(root, f"{PLATFORM_CERTS}/{platform_serial}.pem", platform.public_bytes(pem))
    _write(root, SANDBOX_CA, ca.public_bytes(pem))
    _write(root, PLATFORM_KEY, _private_pem(platform_key))
    _write(root, PUBLIC_KEY_PRIVATE, _private_pem(public_key))
    _write(root, SERVER_CERT, server.public_bytes(pem))
    _write(root, SERVER_KEY, _private_pem(server_key))
    _write(root, CA_KEY, _private_pem(ca_key))
    _write(root, "credentials.json", json.dumps(data, indent=2).encode() + b"\n")


# -- loading -------------------------------------------------------------------------------
def _read(root: Path, name: str) -> bytes:
    try:
        return (root / name).read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"{root / name}: cannot be read ({exc.strerror})") from exc


def _load_private(root: Path, name: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(root, name), password=None)
    except ValueError as exc:
        raise KeyStoreError(f"{root / name}: not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyStoreError(f"{root / name}: not an RSA key")
    return key


def _load(root: Path) -> SandboxCredentials:
    try:
        data = json.loads(_read(root, "credentials.json"))
        wx = data["wechatpay"]
        platform_cert = _read(root, f"{PLATFORM_CERTS}/{wx['platform_serial']}.pem")
        keys = SandboxWechatKeys(
            merchant_key=_load_private(root, MERCHANT_KEY),
            merchant_serial=str(wx["merchant_serial"]),
            platform_key=_load_private(root, PLATFORM_KEY), platform_cert_pem=platform_cert,
            platform_serial=str(wx["platform_serial"]),
            public_key=_load_private(root, PUBLIC_KEY_PRIVATE),
            public_key_id=str(wx["public_key_id"]))
        return SandboxCredentials(
            keys, str(data["mini_app_secret"]), str(wx["apiv3_key"]), str(wx["apiv2_key"]),
            str(data["latipay"]["api_key"]), str(data["qfpay"]["client_key"]),
            str(data["cbtis"]["api_key"]), str(data["cbtis"]["webhook_secret"]), root)
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyStoreError(f"{root / 'credentials.json'}: incomplete or damaged ({exc!r}); "
                            "move the directory away to create new credentials") from exc
