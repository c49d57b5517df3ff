"""A stock ``wechatpayv3`` client, only its base URL changed, against ``minigate sandbox``:
pay → query (by out_trade_no and transaction_id) → refund → refund query → close, every
answer verified by the SDK itself, notifications verified and decrypted by its callback."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from minigate.sandbox import credentials as cred
from tests.sdk.conftest import Receiver, Sandbox

wechatpayv3 = pytest.importorskip("wechatpayv3")
WeChatPay, WeChatPayType = wechatpayv3.WeChatPay, wechatpayv3.WeChatPayType


def client(sandbox: Sandbox, receiver: Receiver, *, public_key: bool = False) -> object:
    """The SDK configured from the keys directory, as docs/sandbox.md shows."""
    keys = sandbox.keys
    options: dict[str, str] = (
        {"public_key": (keys / "merchant/wechatpay_public_key.pem").read_text(),
         "public_key_id": sandbox.creds.wechat.public_key_id} if public_key
        # Certificate mode: the platform certificate is already on disk, so the SDK's
        # constructor needs no network call (it would go to the real WeChat Pay).
        else {"cert_dir": str(keys / "merchant/platform-certs")})
    wxpay = WeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG, mchid=cred.WECHATPAY_MCHID,
        private_key=(keys / "merchant/apiclient_key.pem").read_text(),
        cert_serial_no=sandbox.creds.wechat.merchant_serial, appid=cred.MINI_APP_ID,
        apiv3_key=sandbox.creds.wechatpay_apiv3_key, notify_url=f"{receiver.base}/v3",
        timeout=(5, 10), **options)
    # The SDK has no base-URL option: its gateway attribute is the only thing changed.
    wxpay._core._gate_way = f"{sandbox.base}/sandbox/wechatpay"  # type: ignore[attr-defined]
    return wxpay


def out_trade_no() -> str:
    return "V3SDK" + secrets.token_hex(8).upper()


def paid_notification(receiver: Receiver, wxpay: object, no: str) -> dict:
    def is_ours(note: object) -> bool:
        data = wxpay.callback(note.headers, note.body)  # type: ignore[attr-defined]
        return bool(data) and data["resource"].get("out_trade_no") == no and \
            data["event_type"] == "TRANSACTION.SUCCESS"

    note = receiver.wait(lambda n: n.path == "/v3" and is_ours(n))
    return wxpay.callback(note.headers, note.body)  # type: ignore[attr-defined, no-any-return]


def test_pay_query_refund_close_with_wechatpayv3(sandbox: Sandbox, receiver: Receiver) -> None:
    wxpay = client(sandbox, receiver)
    no, openid = out_trade_no(), sandbox.openid("v3-sdk-shopper")
    code, message = wxpay.pay(description="Oolong tea", out_trade_no=no,
                              amount={"total": 880}, payer={"openid": openid},
                              attach="table=12")
    assert code == 200, message
    prepay_id = json.loads(message)["prepay_id"]

    # The mini program pays with the SDK's own paySign.
    ts, nonce, package = str(int(time.time())), secrets.token_hex(16), f"prepay_id={prepay_id}"
    pay_sign = wxpay.sign([cred.MINI_APP_ID, ts, nonce, package])
    assert sandbox.request_payment({"appId": cred.MINI_APP_ID, "timeStamp": ts,
                                    "nonceStr": nonce, "package": package, "signType": "RSA",
                                    "paySign": pay_sign}) == "requestPayment:ok"

    paid = paid_notification(receiver, wxpay, no)["resource"]
    assert paid["trade_state"] == "SUCCESS" and paid["attach"] == "table=12"
    assert paid["amount"]["total"] == 880 and paid["payer"]["openid"] == openid
    transaction_id = paid["transaction_id"]
    assert transaction_id.isdigit()

    for lookup in ({"out_trade_no": no}, {"transaction_id": transaction_id}):
        code, message = wxpay.query(**lookup)
        assert code == 200, message
        answer = json.loads(message)
        assert (answer["out_trade_no"], answer["transaction_id"]) == (no, transaction_id)
        assert answer["trade_state"] == "SUCCESS" and answer["attach"] == "table=12"

    code, message = wxpay.refund(out_refund_no="R" + no, transaction_id=transaction_id,
                                 amount={"refund": 300, "total": 880, "currency": "CNY"},
                                 notify_url=f"{receiver.base}/v3")
    assert code == 200, message
    refund = json.loads(message)
    assert refund["transaction_id"] == transaction_id and refund["refund_id"].isdigit()
    code, message = wxpay.query_refund(out_refund_no="R" + no)
    assert code == 200 and json.loads(message)["status"] == "SUCCESS", message

    note = receiver.wait(lambda n: n.path == "/v3" and json.loads(n.body)["event_type"]
                         .startswith("REFUND") and wxpay.callback(n.headers, n.body)
                         ["resource"]["out_refund_no"] == "R" + no)
    refunded = wxpay.callback(note.headers, note.body)["resource"]
    assert refunded["refund_status"] == "SUCCESS" and refunded["transaction_id"] == transaction_id
    assert refunded["amount"]["refund"] == 300

    # Close an unpaid order (WeChat's 5 minutes × the sandbox's time scale 0.001 = 0.3 s).
    unpaid = out_trade_no()
    code, message = wxpay.pay(description="Green tea", out_trade_no=unpaid,
                              amount={"total": 100}, payer={"openid": openid})
    assert code == 200, message
    time.sleep(0.4)
    code, message = wxpay.close(out_trade_no=unpaid)
    assert code == 204, message
    code, message = wxpay.query(out_trade_no=unpaid)
    assert code == 200 and json.loads(message)["trade_state"] == "CLOSED"

    # An unknown transaction is WeChat's signed 404, not a framework page.
    code, message = wxpay.query(transaction_id="4200000000000000000000000000")
    assert code == 404 and json.loads(message)["code"] == "ORDER_NOT_EXIST"


def test_public_key_mode(sandbox: Sandbox, receiver: Receiver) -> None:
    """With the WeChat Pay public key the SDK fetches no certificates; the sandbox signs
    its answers with the key the request's Wechatpay-Serial names, as WeChat does."""
    wxpay = client(sandbox, receiver, public_key=True)
    no = out_trade_no()
    code, message = wxpay.pay(description="Puer", out_trade_no=no, amount={"total": 50},
                              payer={"openid": sandbox.openid("v3-pk-shopper")})
    assert code == 200, message
    code, message = wxpay.query(out_trade_no=no)
    assert code == 200 and json.loads(message)["trade_state"] == "NOTPAY"
