"""API v3 signatures and AES-GCM against the fixtures, plus property tests."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from minigate.providers.wechatpay import v3sign
from minigate.providers.wechatpay.v3_messages import V3Account, build_certificates
from tests.providers.wechatpay.vectors import (
    TEST_MCHID,
    TEST_SERIAL,
    vectors,
    wechat_test_key,
    wechat_test_pub,
)

TS, NONCE = "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242"
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ring_with(serial: str, key: rsa.RSAPublicKey | None = None) -> v3sign.KeyRing:
    ring = v3sign.KeyRing()
    ring.add(serial, key or wechat_test_pub())
    return ring


def test_pay_sign_vector_w3_3() -> None:
    v = vectors()["v3_paysign_selfcomputed"]
    message = v3sign.pay_sign_message("wxd678efh567hg6787", TS, NONCE,
                                      "prepay_id=wx201410272009395522657a690389285100")
    assert message.decode() == v["message"]
    assert v3sign.rsa_sign(wechat_test_key(), message) == v["paySign"]


def test_certificates_request_signature_vector() -> None:
    """GET /v3/certificates signed with injected time and nonce: exact bytes, exact header."""
    v = vectors()["v3_get_certificates_selfcomputed"]
    assert v3sign.request_message("GET", "/v3/certificates", TS, NONCE, b"").decode() == \
        v["message"]
    account = V3Account(TEST_MCHID, "wxd678efh567hg6787", "0" * 32, wechat_test_key(),
                        TEST_SERIAL)
    request = build_certificates(account, int(TS), NONCE)
    assert request.url == "https://api.mch.weixin.qq.com/v3/certificates"
    auth = v3sign.parse_authorization(request.headers["Authorization"])
    assert auth == {"mchid": TEST_MCHID, "nonce_str": NONCE, "signature": v["signature"],
                    "timestamp": TS, "serial_no": TEST_SERIAL}


def test_request_message_w3_1_shape() -> None:
    """The documented W3-1 message (its signature is withheld): our bytes, and they verify."""
    body = ('{"appid":"wxd678efh567hg6787","mchid":"1900007291","description":"Image形象店-深圳腾大'
            '-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin'
            '.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"},"payer":{"openid":'
            '"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}').encode()
    message = v3sign.request_message("POST", "/v3/pay/transactions/jsapi", TS, NONCE, body)
    assert message == b"POST\n/v3/pay/transactions/jsapi\n" + TS.encode() + b"\n" + \
        NONCE.encode() + b"\n" + body + b"\n"
    signature = v3sign.rsa_sign(wechat_test_key(), message)
    assert v3sign.rsa_verify(wechat_test_pub(), message, signature)


def notify_headers(**overrides: str) -> dict[str, str]:
    v = vectors()["v3_notify_sig_selfgenerated"]
    headers = {"wechatpay-timestamp": v["Wechatpay-Timestamp"],
               "wechatpay-nonce": v["Wechatpay-Nonce"],
               "wechatpay-signature": v["Wechatpay-Signature"],
               "wechatpay-serial": "PUB_KEY_ID_0000000000000024101100397200000006"}
    headers.update(overrides)
    return headers


def test_notification_signature_vector_w3_4() -> None:
    v = vectors()["v3_notify_sig_selfgenerated"]
    ring = ring_with("PUB_KEY_ID_0000000000000024101100397200000006")
    serial = v3sign.verify_signed(notify_headers(), v["body"].encode(), ring, now=1554209980)
    assert serial.startswith("PUB_KEY_ID_")


def test_notification_rejected_when_body_tampered() -> None:
    v = vectors()["v3_notify_sig_selfgenerated"]
    ring = ring_with("PUB_KEY_ID_0000000000000024101100397200000006")
    body = v["body"].replace("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESS ").encode()
    with pytest.raises(v3sign.SignatureRejected, match="does not verify"):
        v3sign.verify_signed(notify_headers(), body, ring, now=1554209980)


@pytest.mark.parametrize("skew", [-301, 301, 3600])
def test_stale_timestamps_rejected(skew: int) -> None:
    v = vectors()["v3_notify_sig_selfgenerated"]
    ring = ring_with("PUB_KEY_ID_0000000000000024101100397200000006")
    with pytest.raises(v3sign.SignatureRejected, match="5-minute"):
        v3sign.verify_signed(notify_headers(), v["body"].encode(), ring, now=1554209980 + skew)


def test_timestamps_inside_window_accepted() -> None:
    v = vectors()["v3_notify_sig_selfgenerated"]
    ring = ring_with("PUB_KEY_ID_0000000000000024101100397200000006")
    for skew in (-300, 0, 300):
        v3sign.verify_signed(notify_headers(), v["body"].encode(), ring, now=1554209980 + skew)


def test_signtest_probe_rejected_even_with_known_serial() -> None:
    v = vectors()["v3_notify_sig_selfgenerated"]
    ring = ring_with("PUB_KEY_ID_0000000000000024101100397200000006")
    headers = notify_headers(**{"wechatpay-signature": "WECHATPAY/SIGNTEST/" + v[
        "Wechatpay-Signature"]})
    with pytest.raises(v3sign.SignatureRejected, match="SIGNTEST") as exc:
        v3sign.verify_signed(headers, v["body"].encode(), ring, now=1554209980)
    assert not exc.value.unknown_serial


def test_unknown_serial_is_flagged_for_refresh() -> None:
    v = vectors()["v3_notify_sig_selfgenerated"]
    ring = ring_with("ABCDEF0123")
    with pytest.raises(v3sign.SignatureRejected) as exc:
        v3sign.verify_signed(notify_headers(), v["body"].encode(), ring, now=1554209980)
    assert exc.value.unknown_serial


def test_public_key_id_and_certificate_serials_side_by_side() -> None:
    """During a migration both kinds of serial are configured; each picks its own key."""
    v = vectors()["v3_notify_sig_selfgenerated"]
    ring = v3sign.KeyRing()
    ring.add("PUB_KEY_ID_0000000000000024101100397200000006", OTHER_KEY.public_key())
    ring.add("5157f09efdc096de15ebe81a47057a7232f1b8e1", wechat_test_pub())  # lower-case given
    body = v["body"].encode()
    # Certificate serials are case-insensitive hex; the public-key ID is taken verbatim.
    v3sign.verify_signed(notify_headers(**{"wechatpay-serial":
                                           "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"}),
                         body, ring, now=1554209980)
    with pytest.raises(v3sign.SignatureRejected, match="does not verify"):
        v3sign.verify_signed(notify_headers(), body, ring, now=1554209980)


def test_missing_headers_rejected() -> None:
    with pytest.raises(v3sign.SignatureRejected, match="missing"):
        v3sign.verify_signed({}, b"{}", v3sign.KeyRing(), now=0)


def test_aes_gcm_vector_w3_5() -> None:
    v = vectors()["v3_aesgcm_selfgenerated"]
    plaintext = v3sign.aes_gcm_decrypt(v["apiv3_key"], v["nonce"], v["associated_data"],
                                       v["ciphertext_b64"])
    assert plaintext.decode() == v["plaintext"]
    assert v3sign.aes_gcm_encrypt(v["apiv3_key"], v["nonce"], v["associated_data"],
                                  plaintext) == v["ciphertext_b64"]


def test_aes_gcm_rejects_wrong_aad_and_key() -> None:
    v = vectors()["v3_aesgcm_selfgenerated"]
    with pytest.raises(ValueError):
        v3sign.aes_gcm_decrypt(v["apiv3_key"], v["nonce"], "refund", v["ciphertext_b64"])
    with pytest.raises(ValueError):
        v3sign.aes_gcm_decrypt("f" * 32, v["nonce"], v["associated_data"], v["ciphertext_b64"])


def test_authorization_header_round_trip() -> None:
    header = v3sign.authorization(TEST_MCHID, TEST_SERIAL, NONCE, TS, "c2ln")
    assert header.startswith("WECHATPAY2-SHA256-RSA2048 ")
    assert v3sign.parse_authorization(header) == {
        "mchid": TEST_MCHID, "nonce_str": NONCE, "signature": "c2ln", "timestamp": TS,
        "serial_no": TEST_SERIAL}
    assert v3sign.parse_authorization(header.replace("WECHATPAY2", "WECHATPAY3")) is None
    assert v3sign.parse_authorization(header + ',mchid="x"') is None


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=512), ts=st.integers(1_500_000_000, 2_000_000_000),
       nonce=st.text("0123456789ABCDEF", min_size=1, max_size=32))
def test_sign_then_verify_round_trip(body: bytes, ts: int, nonce: str) -> None:
    message = v3sign.response_message(str(ts), nonce, body)
    signature = v3sign.rsa_sign(wechat_test_key(), message)
    headers = {"wechatpay-timestamp": str(ts), "wechatpay-nonce": nonce,
               "wechatpay-signature": signature, "wechatpay-serial": TEST_SERIAL}
    assert v3sign.verify_signed(headers, body, ring_with(TEST_SERIAL), now=ts) == TEST_SERIAL
    with pytest.raises(v3sign.SignatureRejected):
        v3sign.verify_signed(headers, body + b"x", ring_with(TEST_SERIAL), now=ts)
    with pytest.raises(v3sign.SignatureRejected):
        v3sign.verify_signed(headers, body, ring_with(TEST_SERIAL, OTHER_KEY.public_key()),
                             now=ts)


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=256), flip=st.integers(0, 10_000))
def test_tampered_signatures_never_verify(data: bytes, flip: int) -> None:
    message = v3sign.response_message("1", "n", data)
    raw = bytearray(base64.b64decode(v3sign.rsa_sign(wechat_test_key(), message)))
    raw[flip % len(raw)] ^= 0x01
    assert not v3sign.rsa_verify(wechat_test_pub(), message, base64.b64encode(raw).decode())
