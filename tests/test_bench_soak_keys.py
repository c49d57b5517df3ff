"""``bench run --soak-live``: the separate sandbox signs Latipay with the public sandbox key
the load generator forges notifications with (it did not, and every notification of the
soak was rejected), while its other secrets stay its own."""

from __future__ import annotations

from pathlib import Path

from bench.servers import SandboxProcess
from minigate.sandbox import credentials as cred


def test_the_soak_sandbox_signs_latipay_with_the_key_the_load_signs_with(tmp_path: Path) -> None:
    sandbox = SandboxProcess(tmp_path, public_latipay_key=True)
    sandbox._use_public_latipay_key()
    creds = sandbox.credentials()
    assert creds.latipay_api_key == cred.LATIPAY_API_KEY
    assert creds.mini_app_secret != cred.MINI_APP_SECRET  # the rest is the sandbox's own
    other = SandboxProcess(tmp_path / "other")
    assert other.credentials().latipay_api_key != cred.LATIPAY_API_KEY
