"""The v3 client's key ring: platform certificates fetched on an unknown serial, once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from minigate.clock import FrozenClock
from minigate.domain.money import Money
from minigate.errors import NotificationRejected, ProviderError
from minigate.providers.base import (
    HttpRequest,
    HttpResponse,
    IncomingNotification,
    PaymentRef,
    RefundRequest,
)
from minigate.providers.wechatpay import v3sign
from minigate.providers.wechatpay.client import CERT_REFRESH_INTERVAL, WechatpayV3Client
from minigate.providers.wechatpay.keys import load_public_key
from minigate.providers.wechatpay.v3_messages import V3Account
from minigate.sandbox.credentials import WECHATPAY_APIV3_KEY
from minigate.sandbox.wechat_keys import sandbox_wechat_keys


class CertificateServer:
    """A fake transport answering only ``GET /v3/certificates``, counting calls."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.calls = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        assert request.url.endswith("/v3/certificates")
        self.calls += 1
        keys = sandbox_wechat_keys()
        nonce = "abcdefghijkl"
        body = json.dumps({"data": [{"serial_no": keys.platform_serial, "encrypt_certificate": {
            "algorithm": "AEAD_AES_256_GCM", "nonce": nonce, "associated_data": "certificate",
            "ciphertext": v3sign.aes_gcm_encrypt(WECHATPAY_APIV3_KEY, nonce, "certificate",
                                                 keys.platform_cert_pem)}}]}).encode()
        return HttpResponse(200, signed(body, keys.platform_serial, keys.platform_key,
                                        self.clock), body)


def signed(body: bytes, serial: str, key: object, clock: FrozenClock) -> dict[str, str]:
    ts, nonce = str(int(clock.now().timestamp())), "n0nce"
    sig = v3sign.rsa_sign(key, v3sign.response_message(ts, nonce, body))  # type: ignore[arg-type]
    return {"wechatpay-timestamp": ts, "wechatpay-nonce": nonce, "wechatpay-signature": sig,
            "wechatpay-serial": serial}


def make_client() -> tuple[WechatpayV3Client, CertificateServer, FrozenClock]:
    keys = sandbox_wechat_keys()
    clock = FrozenClock()
    server = CertificateServer(clock)
    ring = v3sign.KeyRing()
    ring.add(keys.public_key_id, load_public_key(keys.public_key_pem().encode()))
    account = V3Account("1900009999", "wxapp", WECHATPAY_APIV3_KEY, keys.merchant_key,
                        keys.merchant_serial, public_key_id=keys.public_key_id)
    return WechatpayV3Client(account, server, ring=ring, clock=clock), server, clock


def notification(clock: FrozenClock, serial: str, key: object) -> IncomingNotification:
    resource = {"out_trade_no": "T123456", "trade_state": "SUCCESS",
                "amount": {"total": 100, "currency": "CNY"}}
    body = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource": {
        "nonce": "abcdefghijkl", "associated_data": "transaction",
        "ciphertext": v3sign.aes_gcm_encrypt(WECHATPAY_APIV3_KEY, "abcdefghijkl", "transaction",
                                             json.dumps(resource).encode())}}).encode()
    return IncomingNotification(signed(body, serial, key, clock), body, clock.now())


async def test_public_key_notifications_need_no_fetch() -> None:
    client, server, clock = make_client()
    keys = sandbox_wechat_keys()
    verified = await client.verify_notification(
        notification(clock, keys.public_key_id, keys.public_key))
    assert verified.event_key == "EV-1" and verified.payment is not None
    assert server.calls == 0


async def test_unknown_certificate_serial_fetches_once_then_caches() -> None:
    client, server, clock = make_client()
    keys = sandbox_wechat_keys()
    for _ in range(3):
        await client.verify_notification(
            notification(clock, keys.platform_serial, keys.platform_key))
    assert server.calls == 1


async def test_serial_still_unknown_after_refresh_is_rejected_and_not_refetched() -> None:
    client, server, clock = make_client()
    keys = sandbox_wechat_keys()
    forged = notification(clock, "00DEADBEEF", keys.merchant_key)
    for _ in range(3):
        with pytest.raises(NotificationRejected, match="no key"):
            await client.verify_notification(forged)
    assert server.calls == 1  # flooding unknown serials does not hammer /v3/certificates
    clock.advance(CERT_REFRESH_INTERVAL)
    with pytest.raises(NotificationRejected):
        await client.verify_notification(notification(clock, "00DEADBEEF", keys.merchant_key))
    assert server.calls == 2


class Answering:
    """A fake transport giving one canned answer, signed as WeChat would, then ``spoil``ed."""

    def __init__(self, clock: FrozenClock, status: int, body: bytes,
                 spoil: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]) -> None:
        self.clock, self.status, self.body, self.spoil = clock, status, body, spoil
        self.sent: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        keys = sandbox_wechat_keys()
        headers = signed(self.body, keys.public_key_id, keys.public_key, self.clock)
        headers, body = self.spoil(headers, self.body)
        return HttpResponse(self.status, headers, body)


def answering(status: int, body: bytes,
              spoil: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]
              ) -> tuple[WechatpayV3Client, Answering]:
    keys = sandbox_wechat_keys()
    clock = FrozenClock()
    transport = Answering(clock, status, body, spoil)
    ring = v3sign.KeyRing()
    ring.add(keys.public_key_id, load_public_key(keys.public_key_pem().encode()))
    account = V3Account("1900009999", "wxapp", WECHATPAY_APIV3_KEY, keys.merchant_key,
                        keys.merchant_serial, public_key_id=keys.public_key_id)
    client = WechatpayV3Client(account, transport, ring=ring, clock=clock,
                               fetch_certificates=False)
    return client, transport


REF = PaymentRef("T20260101000001", Money(100, "CNY"), datetime(2026, 1, 1, tzinfo=UTC))
PAID = json.dumps({"out_trade_no": REF.provider_order_no, "trade_state": "SUCCESS",
                   "amount": {"total": 100, "currency": "CNY"}}).encode()


def _same(h: dict[str, str], b: bytes) -> tuple[dict[str, str], bytes]:
    return h, b


async def test_signed_answer_is_believed() -> None:
    client, transport = answering(200, PAID, _same)
    state = await client.query_payment(REF)
    assert state.status.value == "paid"
    assert transport.sent[0].url.endswith(f"/{REF.provider_order_no}?mchid=1900009999")


SPOILERS: dict[str, Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]] = {
    "tampered body": lambda h, b: (h, b.replace(b"SUCCESS", b"SUCCESS ")),
    "stale timestamp": lambda h, b: ({**h, "wechatpay-timestamp": str(
        int(h["wechatpay-timestamp"]) - 301)}, b),
    "signtest probe": lambda h, b: ({**h, "wechatpay-signature":
                                     v3sign.SIGNTEST_PREFIX + h["wechatpay-signature"]}, b),
    "unknown serial": lambda h, b: ({**h, "wechatpay-serial": "7132D72A03E93CDDF8C03BBD1F37EEDF"},
                                    b),
    "unsigned": lambda h, b: ({}, b),
}


@pytest.mark.parametrize("spoiler", list(SPOILERS))
async def test_unverifiable_answers_are_never_believed(spoiler: str) -> None:
    client, _ = answering(200, PAID, SPOILERS[spoiler])
    with pytest.raises(ProviderError) as exc:
        await client.query_payment(REF)
    assert exc.value.code == "provider_bad_signature"


async def test_close_204_is_verified_over_the_empty_body() -> None:
    client, _ = answering(204, b"", _same)
    await client.close_payment(REF)
    forged, _ = answering(204, b"", lambda h, b: (h, b"{}"))
    with pytest.raises(ProviderError, match="does not verify"):
        await forged.close_payment(REF)


async def test_refund_answer_with_a_bad_signature_is_not_a_refusal() -> None:
    """A 4xx that does not verify might be forged: it must not fail (and free) the refund."""
    body = b'{"code":"NOT_ENOUGH","message":"x"}'
    client, _ = answering(403, body, lambda h, b: (h, b.replace(b'"x"', b'"y"')))
    request = RefundRequest(REF, "RF1", Money(100, "CNY"))
    with pytest.raises(ProviderError) as exc:
        await client.refund(request)
    assert exc.value.code == "provider_bad_signature" and exc.value.provider_code is None


def test_fetched_platform_certificates_past_their_validity_are_left_out() -> None:
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from minigate.providers.wechatpay import v3_messages as v3
    from minigate.providers.wechatpay.keys import serial_hex

    now = datetime(2026, 11, 22, tzinfo=UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired platform cert")])
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - timedelta(days=5 * 365))
           .not_valid_after(now - timedelta(days=1)).sign(key, hashes.SHA256()))
    keys = sandbox_wechat_keys()
    entries = [(keys.platform_serial, keys.platform_cert_pem),
               (serial_hex(old.serial_number), old.public_bytes(serialization.Encoding.PEM))]
    body = json.dumps({"data": [{"serial_no": serial, "encrypt_certificate": {
        "algorithm": "AEAD_AES_256_GCM", "nonce": "abcdefghijkl",
        "associated_data": "certificate",
        "ciphertext": v3sign.aes_gcm_encrypt(WECHATPAY_APIV3_KEY, "abcdefghijkl",
                                             "certificate", pem)}}
        for serial, pem in entries]}).encode()
    account = make_client()[0].account
    response = HttpResponse(200, {}, body)
    assert [c.serial_no for c in v3.parse_certificates(account, response, now)] == [
        keys.platform_serial]
    assert len(v3.parse_certificates(account, response)) == 2  # no clock: nothing judged
