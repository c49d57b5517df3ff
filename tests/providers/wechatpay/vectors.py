"""Loading the WeChat Pay fixtures (see tests/fixtures/wechatpay/README.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from minigate.providers.wechatpay import keys

DIR = Path(__file__).resolve().parents[2] / "fixtures" / "wechatpay"
TEST_MCHID = "1900007291"
TEST_SERIAL = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB"


@cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DIR / "vectors.json").read_text())
    return data


@cache
def wechat_test_key() -> RSAPrivateKey:
    """The public test key published by WeChat."""
    return keys.load_private_key((DIR / "wechat_published_test_key.pem").read_bytes())


@cache
def wechat_test_pub() -> RSAPublicKey:
    return keys.load_public_key((DIR / "wechat_published_test_pub.pem").read_bytes())
