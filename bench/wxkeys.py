"""One set of simulated WeChat Pay keys for every process of a benchmark run.

minigate's sandbox generates its WeChat Pay key material per process and never stores it
(:func:`minigate.sandbox.wechat_keys.sandbox_wechat_keys`). The benchmark signs WeChat Pay
notifications in the load process and the baseline signs requests in its own process, so the
orchestrator generates the keys once, writes them to its temporary directory (sandbox test
keys, never committed, deleted with the directory) and points :data:`ENV` at the file; every
child process inherits the variable. :mod:`bench.mgserve` hands the same keys to minigate.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from minigate.sandbox.wechat_keys import SandboxWechatKeys, sandbox_wechat_keys

ENV = "MINIGATE_BENCH_WECHAT_KEYS"


@functools.cache
def keys() -> SandboxWechatKeys:
    """The run's keys (from :data:`ENV`), or this process's sandbox keys when unset (tests)."""
    path = os.environ.get(ENV)
    return load(Path(path)) if path else sandbox_wechat_keys()


def share(workdir: Path) -> Path:
    """Write this process's keys under ``workdir`` and export :data:`ENV` to children."""
    path = workdir / "wechat-keys.json"
    if os.environ.get(ENV) != str(path):
        save(keys(), path)
        os.environ[ENV] = str(path)
    return path


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def save(k: SandboxWechatKeys, path: Path) -> None:
    data = {"merchant_key": _pem(k.merchant_key), "merchant_serial": k.merchant_serial,
            "platform_key": _pem(k.platform_key), "platform_cert": k.platform_cert_pem.decode(),
            "platform_serial": k.platform_serial, "public_key": _pem(k.public_key),
            "public_key_id": k.public_key_id}
    path.touch(mode=0o600)
    path.write_text(json.dumps(data))


def _private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def load(path: Path) -> SandboxWechatKeys:
    data = json.loads(path.read_text())
    return SandboxWechatKeys(
        merchant_key=_private(data["merchant_key"]), merchant_serial=data["merchant_serial"],
        platform_key=_private(data["platform_key"]),
        platform_cert_pem=data["platform_cert"].encode(), platform_serial=data["platform_serial"],
        public_key=_private(data["public_key"]), public_key_id=data["public_key_id"])
