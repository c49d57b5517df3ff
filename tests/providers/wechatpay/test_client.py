"""The v3 client's key ring: platform certificates fetched on an unknown serial, once."""

from __future__ import annotations

import json

import pytest

from minigate.clock import FrozenClock
from minigate.errors import NotificationRejected
from minigate.providers.base import HttpRequest, HttpResponse, IncomingNotification
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
