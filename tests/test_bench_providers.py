"""Every provider's benchmark notification is accepted by minigate's own connector and
would pay the seeded order (amount, currency, app id and merchant id all match), and the
bare baseline's verification agrees. Nothing here times anything."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from bench import wxkeys
from bench.providers import PROVIDERS, parse_providers
from minigate.config import Settings
from minigate.domain.money import Money
from minigate.errors import NotificationRejected
from minigate.providers.base import IncomingNotification, ProviderPaymentStatus
from minigate.providers.cbtis import assumptions as A
from minigate.providers.cbtis import signing as cbtis_signing
from minigate.providers.registry import build_providers
from minigate.sandbox import credentials as cred
from minigate.sandbox.credentials import sandbox_settings
from minigate.transport import HttpxTransport

NOTIFYING = [p for p in PROVIDERS.values() if p.notifies]


@pytest.fixture(scope="module")
def connectors() -> dict:
    settings = sandbox_settings(Settings(mode="sandbox", public_url="http://bench.test"),
                                wxkeys.keys())
    return build_providers(settings, HttpxTransport(httpx.AsyncClient()))


def verify(connector, headers: dict[str, str], body: bytes):
    incoming = IncomingNotification({k.lower(): v for k, v in headers.items()}, body,
                                    datetime.now(UTC))
    result = connector.verify_notification(incoming)
    return asyncio.run(result) if inspect.isawaitable(result) else result


def test_every_provider_is_in_minigate_and_in_the_bench(connectors) -> None:
    assert set(PROVIDERS) == set(connectors)


@pytest.mark.parametrize("provider", NOTIFYING, ids=lambda p: p.name)
def test_notification_verifies_with_minigate_and_pays_the_seeded_order(connectors,
                                                                      provider) -> None:
    number = provider.seed_number(7)
    note = provider.notification(number)
    connector = connectors[provider.name]
    verified = verify(connector, note.headers, note.body)
    state = verified.payment
    assert verified.trusted and state is not None
    assert state.status is ProviderPaymentStatus.PAID
    assert state.provider_order_no == number
    # what service.payments.mismatch compares with the seeded order
    assert state.amount == Money(provider.amount_minor, provider.currency)
    assert Money.parse(provider.amount, provider.currency).minor == provider.amount_minor
    identity = getattr(connector, "identity", {})
    for key, got in (("app_id", state.app_id), ("merchant_id", state.merchant_id)):
        assert got is None or got == identity.get(key, got)
    assert provider.bare_verify is not None
    assert provider.bare_verify(note.headers, note.body) == verified.event_key


@pytest.mark.parametrize("provider", NOTIFYING, ids=lambda p: p.name)
def test_tampered_notification_is_refused_by_both(connectors, provider) -> None:
    note = provider.notification(provider.seed_number(8))
    body = note.body.replace(b"1230", b"1231").replace(b"12.30", b"12.31")
    if provider.name == "wechatpay":  # the amount is encrypted: tamper with the envelope
        body = note.body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESX")
    assert body != note.body
    with pytest.raises(NotificationRejected):
        verify(connectors[provider.name], note.headers, body)
    assert provider.bare_verify is not None
    assert provider.bare_verify(note.headers, body) is None


@pytest.mark.parametrize("provider", NOTIFYING, ids=lambda p: p.name)
def test_distinct_orders_give_distinct_event_keys(provider) -> None:
    assert provider.bare_verify is not None
    keys = {provider.bare_verify(n.headers, n.body)
            for n in (provider.notification(provider.seed_number(i)) for i in range(3))}
    assert len(keys) == 3


def test_minigate_acks_are_what_the_bench_expects(connectors) -> None:
    for provider in PROVIDERS.values():
        ok, refused = connectors[provider.name].ack(True), connectors[provider.name].ack(False)
        assert provider.acked(ok.status, ok.body), provider.name
        assert not provider.acked(refused.status, refused.body), provider.name
        assert (ok.status, ok.body) == provider.ack[:2]  # what the baseline answers


def test_cbtis_webhook_is_only_a_hint(connectors) -> None:
    """Why CBTIS has no notification op: a correctly signed webhook is never trusted."""
    assert not PROVIDERS["cbtis"].notifies and PROVIDERS["cbtis"].no_notification
    body = json.dumps({"notify_type": "payment_success", "data": {
        "order_id": "C1", "merchant_order_id": PROVIDERS["cbtis"].seed_number(1)}}).encode()
    stamp = str(int(time.time() * 1000))
    verified = verify(connectors["cbtis"], {
        A.TIMESTAMP_HEADER: stamp,
        A.SIGNATURE_HEADER: cbtis_signing.webhook_signature(cred.CBTIS_WEBHOOK_SECRET, stamp,
                                                            body)}, body)
    assert verified.trusted is False
    assert verified.payment is not None
    assert verified.payment.status is ProviderPaymentStatus.UNKNOWN


def test_crypto_floor_functions_run() -> None:
    for provider in PROVIDERS.values():
        for fn in (provider.crypto_checkout, provider.crypto_checkout_sim,
                   provider.crypto_notification):
            if fn is not None:
                fn()
        assert (provider.crypto_checkout is None) == (provider.name == "cbtis")
        assert provider.floor_checkout
        assert provider.notifies == bool(provider.floor_notification)


def test_shared_wechat_keys_round_trip(tmp_path) -> None:
    path = tmp_path / "keys.json"
    wxkeys.save(wxkeys.keys(), path)
    loaded = wxkeys.load(path)
    original = wxkeys.keys()
    assert loaded.public_key_id == original.public_key_id
    assert loaded.merchant_serial == original.merchant_serial
    assert loaded.public_key.private_numbers() == original.public_key.private_numbers()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_parse_providers() -> None:
    assert parse_providers("all") == list(PROVIDERS)
    assert parse_providers("latipay, wechatpay,latipay") == ["latipay", "wechatpay"]
    with pytest.raises(ValueError, match="nope"):
        parse_providers("latipay,nope")
