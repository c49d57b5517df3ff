"""A stock ``wechatpy`` (WeChat Pay API v2) client, only its base URL changed, against
``minigate sandbox``: unifiedorder → the wallet pays with wechatpy's JSAPI params →
notification → orderquery by both ids → refund → refundquery → closeorder; answers and
notifications checked with wechatpy's own functions. Over TLS, refunds need the merchant's
client certificate, as at WeChat."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minigate.sandbox import credentials as cred
from tests.sdk.conftest import Receiver, Sandbox, start_sandbox, stop

wechatpy_pay = pytest.importorskip("wechatpy.pay")
WeChatPay = wechatpy_pay.WeChatPay
WeChatPayException = pytest.importorskip("wechatpy.exceptions").WeChatPayException


def client(sandbox: Sandbox, *, with_cert: bool = False, at_root: bool = False) -> object:
    keys = sandbox.keys
    cert = ({"mch_cert": str(keys / "merchant/apiclient_cert.pem"),
             "mch_key": str(keys / "merchant/apiclient_key.pem")} if with_cert else {})
    pay = WeChatPay(appid=cred.MINI_APP_ID, api_key=sandbox.creds.wechatpay_apiv2_key,
                    mch_id=cred.WECHATPAY_MCHID, timeout=10, **cert)
    # The only change: the base URL (the root with --provider wechatpay).
    pay.API_BASE_URL = f"{sandbox.base}/" if at_root else f"{sandbox.base}/sandbox/wechatpay/"
    return pay


def out_trade_no() -> str:
    return "V2SDK" + secrets.token_hex(8).upper()


def paid_order(sandbox: Sandbox, pay: object, receiver: Receiver | None,
               attach: str = "") -> tuple[str, str]:
    """Create, pay with wechatpy's JSAPI params; (out_trade_no, transaction_id)."""
    no = out_trade_no()
    notify = f"{receiver.base}/v2" if receiver else "http://127.0.0.1:9/unused"
    created = pay.order.create(trade_type="JSAPI", body="Jasmine tea", total_fee=660,
                               notify_url=notify, client_ip="127.0.0.1", out_trade_no=no,
                               user_id=sandbox.openid("v2-sdk-shopper"), attach=attach or None)
    assert pay.check_signature(created)
    params = pay.jsapi.get_jsapi_params(created["prepay_id"])
    assert sandbox.request_payment(params) == "requestPayment:ok"
    answer = pay.order.query(out_trade_no=no)
    return no, answer["transaction_id"]


def test_pay_query_refund_close_with_wechatpy(sandbox: Sandbox, receiver: Receiver) -> None:
    pay = client(sandbox)
    no, transaction_id = paid_order(sandbox, pay, receiver, attach="table=3")
    assert transaction_id.isdigit() and len(transaction_id) == 28

    note = receiver.wait(lambda n: n.path == "/v2" and b"req_info" not in n.body
                         and no.encode() in n.body)
    paid = pay.parse_payment_result(note.body)  # raises unless the sign verifies
    assert paid["result_code"] == "SUCCESS" and paid["transaction_id"] == transaction_id
    assert paid["total_fee"] == 660 and paid["attach"] == "table=3"

    for lookup in ({"out_trade_no": no}, {"transaction_id": transaction_id}):
        answer = pay.order.query(**lookup)
        assert pay.check_signature(answer)
        assert answer["trade_state"] == "SUCCESS" and answer["trade_state_desc"]
        assert answer["out_trade_no"] == no and answer["attach"] == "table=3"

    refund = pay.refund.apply(total_fee=660, refund_fee=200, out_refund_no="R" + no,
                              transaction_id=transaction_id, notify_url=f"{receiver.base}/v2")
    assert pay.check_signature(refund)
    assert refund["transaction_id"] == transaction_id and refund["cash_fee"] == "660"
    for lookup in ({"out_refund_no": "R" + no}, {"refund_id": refund["refund_id"]},
                   {"transaction_id": transaction_id}, {"out_trade_no": no}):
        answer = pay.refund.query(**lookup)
        assert pay.check_signature(answer)
        assert answer["refund_count"] == "1" and answer["refund_status_0"] == "SUCCESS"
        assert answer["out_refund_no_0"] == "R" + no

    note = receiver.wait(lambda n: n.path == "/v2" and b"req_info" in n.body and
                         pay.parse_refund_notify_result(n.body)["out_refund_no"] == "R" + no)
    refunded = pay.parse_refund_notify_result(note.body)  # decrypts req_info
    assert refunded["refund_status"] == "SUCCESS" and refunded["refund_fee"] == 200
    assert refunded["transaction_id"] == transaction_id

    # closeorder (after WeChat's 5 minutes × 0.001), then again: ORDERCLOSED.
    unpaid = out_trade_no()
    pay.order.create(trade_type="JSAPI", body="Black tea", total_fee=100,
                     notify_url=f"{receiver.base}/v2", client_ip="127.0.0.1",
                     out_trade_no=unpaid, user_id=sandbox.openid("v2-sdk-shopper"))
    time.sleep(0.4)
    assert pay.check_signature(pay.order.close(unpaid))
    with pytest.raises(WeChatPayException) as closed:
        pay.order.close(unpaid)
    assert closed.value.errcode == "ORDERCLOSED"
    assert pay.order.query(out_trade_no=unpaid)["trade_state"] == "CLOSED"


@pytest.fixture(scope="module")
def tls_sandbox(sdk_keys: Path) -> Iterator[Sandbox]:
    running = start_sandbox(sdk_keys, sdk_keys.parent / "sandbox-tls.log", "--tls",
                            "--provider", "wechatpay")
    yield running
    stop(running)


def test_v2_refund_needs_the_client_certificate_over_tls(tls_sandbox: Sandbox,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Also: WeChat Pay's real paths at the root (``--provider wechatpay``), over HTTPS."""
    assert tls_sandbox.ca is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_sandbox.ca)  # requests trusts the sandbox CA
    plain = client(tls_sandbox, at_root=True)
    no, transaction_id = paid_order(tls_sandbox, plain, None)
    with pytest.raises(WeChatPayException) as refused:
        plain.refund.apply(total_fee=660, refund_fee=100, out_refund_no="R" + no,
                           transaction_id=transaction_id)
    assert refused.value.return_code == "FAIL" and "CERT" in refused.value.return_msg
    with_cert = client(tls_sandbox, with_cert=True, at_root=True)
    answer = with_cert.refund.apply(total_fee=660, refund_fee=100, out_refund_no="R" + no,
                                    transaction_id=transaction_id)
    assert with_cert.check_signature(answer) and answer["result_code"] == "SUCCESS"
    for pay in (plain, with_cert):
        pay._http.close()  # no idle keep-alive connection holds the server's shutdown
