"""WeChat Pay API v3 (direct): RSA-2048 everywhere, AES-256-GCM notification resources.

* checkout, minigate's side: SHA256withRSA request signature (Authorization), RSA
  verification of the simulator's signed answer, SHA256withRSA ``paySign``;
* notification: RSA verification of the ``Wechatpay-*`` headers, AES-256-GCM decryption of
  ``resource`` with the APIv3 key; acked 204 (200 also counts).

The keys are the run's shared sandbox keys (:mod:`bench.wxkeys`). Notifications are signed
with the "WeChat Pay public key" (``PUB_KEY_ID_…``), which minigate's sandbox account holds
from the start (no certificate download); the cost is the same RSA verification as with a
platform certificate.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench import wxkeys
from bench.providers.base import Notification, ProviderBench, bench_number, seed_number
from minigate.providers.wechatpay import v3sign
from minigate.sandbox import credentials as cred
from minigate.sandbox.wechatpay import canonical_path

AMOUNT, MINOR, CURRENCY = "12.30", 1230, "CNY"
CHINA = timezone(timedelta(hours=8))
OPENID = "o" + "b" * 27  # the seeded payments' openid (not compared by minigate)


@functools.cache
def ring() -> v3sign.KeyRing:
    k = wxkeys.keys()
    keyring = v3sign.KeyRing()
    keyring.add(k.public_key_id, k.public_key.public_key())
    return keyring


def signed_headers(body: bytes) -> dict[str, str]:
    """``Wechatpay-*`` headers as WeChat Pay sends them (public-key mode)."""
    k = wxkeys.keys()
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    signature = v3sign.rsa_sign(k.public_key, v3sign.response_message(timestamp, nonce, body))
    return {"Content-Type": "application/json", "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
            "Wechatpay-Serial": k.public_key_id, "Wechatpay-Signature-Type": v3sign.SCHEME}


def transaction(number: str) -> dict[str, Any]:
    """A paid transaction for a seeded order: appid, mchid, amount and currency match it."""
    return {
        "appid": cred.MINI_APP_ID, "mchid": cred.WECHATPAY_MCHID, "out_trade_no": number,
        "transaction_id": "4200000" + number[-21:], "trade_type": "JSAPI",
        "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "success_time": "2026-11-22T11:00:00+08:00", "payer": {"openid": OPENID},
        "amount": {"total": MINOR, "payer_total": MINOR, "currency": CURRENCY,
                   "payer_currency": CURRENCY},
    }


def notification_body(number: str) -> bytes:
    nonce = secrets.token_hex(6)
    plaintext = json.dumps(transaction(number), ensure_ascii=False).encode()
    envelope = {
        "id": "EV-" + number, "create_time": "2026-11-22T11:00:01+08:00",
        "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": v3sign.aes_gcm_encrypt(cred.WECHATPAY_APIV3_KEY, nonce,
                                                          "transaction", plaintext),
                     "associated_data": "transaction", "nonce": nonce},
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def notification(number: str) -> Notification:
    body = notification_body(number)
    return Notification(signed_headers(body), body)


def bare_verify(headers: Mapping[str, str], body: bytes) -> str | None:
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        v3sign.verify_signed(lower, body, ring(), int(time.time()))
        envelope = json.loads(body)
        resource = envelope["resource"]
        json.loads(v3sign.aes_gcm_decrypt(cred.WECHATPAY_APIV3_KEY, resource["nonce"],
                                          resource["associated_data"], resource["ciphertext"]))
    except (v3sign.SignatureRejected, ValueError, KeyError):
        return None
    return str(envelope["id"])


def _authorization(url: str, body: bytes) -> str:
    k = wxkeys.keys()
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16).upper()
    # WeChat's canonical path (/v3/…), as minigate's connector signs it
    message = v3sign.request_message("POST", canonical_path(urlsplit(url).path), timestamp,
                                     nonce, body)
    return v3sign.authorization(cred.WECHATPAY_MCHID, k.merchant_serial, nonce, timestamp,
                                v3sign.rsa_sign(k.merchant_key, message))


def _jsapi_body(number: str, openid: str, minor: int) -> bytes:
    expires = (datetime.now(CHINA) + timedelta(minutes=30)).replace(microsecond=0)
    return json.dumps({
        "appid": cred.MINI_APP_ID, "mchid": cred.WECHATPAY_MCHID, "description": "bench",
        "out_trade_no": number, "time_expire": expires.isoformat(),
        "notify_url": "http://127.0.0.1:9/bare", "amount": {"total": minor, "currency": CURRENCY},
        "payer": {"openid": openid},
    }, ensure_ascii=False, separators=(",", ":")).encode()


def pay_params(prepay_id: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16).upper()
    package = f"prepay_id={prepay_id}"
    message = v3sign.pay_sign_message(cred.MINI_APP_ID, timestamp, nonce, package)
    return {"timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA",
            "paySign": v3sign.rsa_sign(wxkeys.keys().merchant_key, message)}


async def bare_create(http: httpx.AsyncClient, sim: str, openid: str,
                      minor: int) -> dict[str, Any]:
    number = bench_number()
    url = f"{sim}/wechatpay/v3/pay/transactions/jsapi"
    body = _jsapi_body(number, openid, minor)
    r = await http.post(url, content=body, headers={
        "Authorization": _authorization(url, body), "Content-Type": "application/json",
        "Accept": "application/json", "Wechatpay-Serial": wxkeys.keys().public_key_id})
    v3sign.verify_signed(r.headers, r.content, ring(), int(time.time()))
    if r.status_code != 200:
        raise RuntimeError(f"jsapi: HTTP {r.status_code} {r.text[:100]}")
    return {"number": number, "payment": pay_params(r.json()["prepay_id"])}


@functools.cache
def _samples() -> dict[str, Any]:
    """Realistic messages for the crypto floor, signed once."""
    k = wxkeys.keys()
    body = _jsapi_body("MG" + "x" * 26, OPENID, MINOR)
    request = v3sign.request_message("POST", "/v3/pay/transactions/jsapi", "1700000000",
                                     "N" * 32, body)
    answer = v3sign.response_message("1700000000", "n" * 32, b'{"prepay_id":"wx' + b"0" * 30 + b'"}')
    pay = v3sign.pay_sign_message(cred.MINI_APP_ID, "1700000000", "N" * 32,
                                  "prepay_id=wx" + "0" * 30)
    note = notification("MG" + "x" * 26)
    return {
        "request": request, "request_sig": v3sign.rsa_sign(k.merchant_key, request),
        "answer": answer, "answer_sig": v3sign.rsa_sign(k.public_key, answer), "pay": pay,
        "note": note, "note_resource": json.loads(note.body)["resource"],
        "note_message": v3sign.response_message(note.headers["Wechatpay-Timestamp"],
                                                note.headers["Wechatpay-Nonce"], note.body),
    }


def crypto_checkout() -> object:
    s, k = _samples(), wxkeys.keys()
    v3sign.rsa_sign(k.merchant_key, s["request"])  # Authorization
    v3sign.rsa_verify(k.public_key.public_key(), s["answer"], s["answer_sig"])  # the answer
    return v3sign.rsa_sign(k.merchant_key, s["pay"])  # paySign


def crypto_checkout_sim() -> object:
    s, k = _samples(), wxkeys.keys()
    v3sign.rsa_verify(k.merchant_key.public_key(), s["request"], s["request_sig"])
    return v3sign.rsa_sign(k.public_key, s["answer"])


def crypto_notification() -> object:
    s, k = _samples(), wxkeys.keys()
    v3sign.rsa_verify(k.public_key.public_key(), s["note_message"],
                      s["note"].headers["Wechatpay-Signature"])
    r = s["note_resource"]
    return v3sign.aes_gcm_decrypt(cred.WECHATPAY_APIV3_KEY, r["nonce"], r["associated_data"],
                                  r["ciphertext"])


WECHATPAY = ProviderBench(
    name="wechatpay", channel="wechat", currency=CURRENCY, amount=AMOUNT, amount_minor=MINOR,
    seed_number=seed_number, ack=(204, b"", "application/json"), ack_statuses=(200,),
    bare_create=bare_create, crypto_checkout=crypto_checkout,
    floor_checkout="2 RSA-2048 signatures (Authorization, paySign) + 1 RSA verification "
                   "(the answer)",
    crypto_checkout_sim=crypto_checkout_sim, notification=notification,
    bare_verify=bare_verify, crypto_notification=crypto_notification,
    floor_notification="1 RSA-2048 verification + 1 AES-256-GCM decryption",
)
