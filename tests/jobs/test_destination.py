"""Webhook destinations: refused at save (start-up) and at every send."""

from __future__ import annotations

import pytest

from minigate.app import Runtime
from minigate.config import load_settings
from minigate.jobs.destination import UnsafeDestination, check_resolved, check_url

PRIVATE_URLS = [
    "https://127.0.0.1/hooks", "https://[::1]/hooks", "https://10.1.2.3/hooks",
    "https://192.168.0.10/hooks", "https://172.16.5.5/hooks", "https://169.254.169.254/latest",
    "https://100.100.100.200/meta", "https://[fd00:ec2::254]/", "https://[::ffff:127.0.0.1]/",
    "https://0.0.0.0/hooks", "https://localhost/hooks", "https://api.localhost./hooks",
    "https://2130706433/hooks", "https://127.1/hooks", "https://0x7f.1/hooks",
    "https://0251.0376.0251.0376/latest",  # 169.254.169.254 in octal
    "https://user:pw@merchant.example/hooks", "ftp://merchant.example/hooks", "/hooks",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_unsafe_urls_refused_at_save(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        check_url(url, require_https=True, allow_loopback=False)


def test_https_required_outside_sandbox_and_loopback_only_when_allowed() -> None:
    with pytest.raises(UnsafeDestination):
        check_url("http://merchant.example/hooks", require_https=True, allow_loopback=False)
    assert check_url("https://merchant.example/hooks", require_https=True,
                     allow_loopback=False) == ("merchant.example", 443)
    assert check_url("http://127.0.0.1:9000/h", require_https=False,
                     allow_loopback=True) == ("127.0.0.1", 9000)
    for url in ("http://169.254.169.254/", "http://10.0.0.1/"):  # loopback only, never these
        with pytest.raises(UnsafeDestination):
            check_url(url, require_https=False, allow_loopback=True)


def _resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)
    return resolve


@pytest.mark.parametrize("addresses", [
    ("127.0.0.1",), ("169.254.169.254",), ("93.184.216.34", "10.0.0.5"), ("::ffff:127.0.0.1",),
    ("::1",), ("100.100.100.200",), (),
])
async def test_hostnames_resolving_inside_are_refused_at_send(addresses: tuple[str, ...]) -> None:
    with pytest.raises(UnsafeDestination):
        await check_resolved("merchant.example", 443, allow_loopback=False,
                             resolver=_resolving_to(*addresses))


async def test_public_resolution_passes_and_loopback_only_when_allowed() -> None:
    await check_resolved("merchant.example", 443, allow_loopback=False,
                         resolver=_resolving_to("93.184.216.34", "2606:2800:220:1::1"))
    await check_resolved("localhost", 80, allow_loopback=True, resolver=_resolving_to("127.0.0.1"))
    with pytest.raises(UnsafeDestination):
        await check_resolved("x", 80, allow_loopback=True, resolver=_resolving_to("169.254.169.254"))


@pytest.mark.parametrize("url", ["http://merchant.example/hooks", "https://10.0.0.7/hooks"])
async def test_live_runtime_refuses_to_start_with_an_unsafe_webhook(url: str) -> None:
    settings = load_settings(mode="live", api_key="sk_live_x", webhook_url=url,
                             database_url="sqlite+aiosqlite:///:memory:")
    runtime = Runtime(settings, auto_migrate=False, run_jobs=False)
    try:
        with pytest.raises(UnsafeDestination):
            await runtime.start()
        assert runtime.engine is None  # refused before anything was opened
    finally:
        await runtime.stop()


def test_pinned_sends_to_the_checked_address_under_the_original_name() -> None:
    from minigate.jobs.destination import pinned

    url, headers, extensions = pinned("https://merchant.example:8443/hooks?x=1", "93.184.216.34")
    assert url == "https://93.184.216.34:8443/hooks?x=1"
    assert headers == {"Host": "merchant.example:8443"}
    assert extensions == {"sni_hostname": "merchant.example"}  # the certificate's name
    url, headers, _ = pinned("https://merchant.example/hooks", "2001:db8::1")
    assert url == "https://[2001:db8::1]/hooks" and headers == {"Host": "merchant.example"}
