"""Certificates and keys named by the configuration: load them, read their expiry.

Used by ``minigate check`` (does the key material parse, when does each certificate
expire) and by ``/metrics`` (``minigate_certificate_expiry_timestamp_seconds``).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from minigate.config import Settings

#: Settings block -> provider id.
WECHATPAY_BLOCKS = {"wechatpay": "wechatpay", "wechatpay_v2": "wechatpay-v2"}


def configured_certificates(settings: Settings) -> list[tuple[str, str, x509.Certificate]]:
    """(provider, file name, certificate) for every certificate file the settings name
    that can be read; unreadable ones are ``minigate check``'s to report."""
    found = []
    for block, provider in WECHATPAY_BLOCKS.items():
        path = getattr(settings, block).client_cert_path
        if not path:
            continue
        try:
            cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        except (OSError, ValueError):
            continue
        found.append((provider, Path(path).name, cert))
    return found
