"""The WeChat Pay simulator answers as WeChat does (issue 13's "What was seen", one by one),
driven by our own small client: canonical signatures, lookups by every id, the fields
WeChat sends, and its error shapes."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import pytest

from minigate.providers.wechatpay import v3sign
from minigate.providers.wechatpay.v3_messages import V3Account
from minigate.sandbox import credentials as cred
from tests.sandbox.wx_client import SANDBOX, WX, WxSim, start_sim

TRANSACTION_ID = re.compile(r"[0-9]{28}")
REFUND_ID = re.compile(r"[0-9]{29}")


@pytest.fixture
async def sim() -> AsyncIterator[WxSim]:
    s, app = await start_sim()
    async with app.router.lifespan_context(app):
        yield s
        await s.http.aclose()


def order_no() -> str:
    return "FID" + secrets.token_hex(8).upper()


async def paid_v3(sim: WxSim, attach: str = "") -> tuple[str, str]:
    """A paid v3 order: (out_trade_no, transaction_id)."""
    no = order_no()
    prepay = await sim.v3_order(no, attach=attach)
    assert await sim.pay(sim.v3_pay_params(prepay)) == "requestPayment:ok"
    return no, sim.world.wechatpay.orders[no].prepay.transaction_id


async def paid_v2(sim: WxSim, attach: str = "") -> tuple[str, str]:
    no = order_no()
    prepay = await sim.v2_order(no, attach=attach)
    assert await sim.pay(sim.v2_pay_params(prepay)) == "requestPayment:ok"
    return no, sim.world.wechatpay.orders[no].prepay.transaction_id


# -- addressing ------------------------------------------------------------------------------
@pytest.mark.parametrize("at_root", [False, True])
async def test_v3_signatures_cover_the_canonical_path(at_root: bool) -> None:
    """Signed over ``/v3/…`` (what WeChat and every SDK sign): accepted under the mount and,
    with ``provider_at_root``, at the root; signed over the mounted path: SIGN_ERROR."""
    sim, app = await start_sim(provider_at_root="wechatpay" if at_root else None)
    async with app.router.lifespan_context(app):
        base = SANDBOX if at_root else WX
        account = V3Account(cred.WECHATPAY_MCHID, cred.MINI_APP_ID,
                            sim.creds.wechatpay_apiv3_key, sim.creds.wechat.merchant_key,
                            sim.creds.wechat.merchant_serial, base)
        path = f"/v3/pay/transactions/out-trade-no/NOSUCH0001?mchid={cred.WECHATPAY_MCHID}"
        ts, nonce = str(int(sim.clock.now().timestamp())), "N0NCE"

        async def get(signed_path: str) -> int:
            message = v3sign.request_message("GET", signed_path, ts, nonce, b"")
            auth = v3sign.authorization(account.mchid, account.merchant_serial, nonce, ts,
                                        v3sign.rsa_sign(account.private_key, message))
            r = await sim.http.get(base + path, headers={"Authorization": auth})
            sim.v3_verified(r)
            return r.status_code

        assert await get(path) == 404  # authenticated: the order does not exist
        if not at_root:
            assert await get("/sandbox/wechatpay" + path) == 401
        await sim.http.aclose()


async def test_unknown_v3_route_is_wechats_signed_error(sim: WxSim) -> None:
    r = await sim.v3("GET", "/v3/pay/no-such-api/42")
    assert r.status_code == 404
    assert set(r.json()) == {"code", "message"} and r.json()["code"] == "NOT_FOUND"
    sim.v3_verified(r)


async def test_certificates_answer_carries_the_signature_type(sim: WxSim) -> None:
    r = await sim.v3("GET", "/v3/certificates")
    assert r.status_code == 200
    assert r.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert r.headers["Wechatpay-Serial"] == sim.creds.wechat.platform_serial
    sim.v3_verified(r)


# -- API v3 --------------------------------------------------------------------------------
async def test_v3_lookup_by_transaction_id_and_attach(sim: WxSim) -> None:
    no, tid = await paid_v3(sim, attach="batch=7")
    assert TRANSACTION_ID.fullmatch(tid)
    by_no = await sim.v3("GET", f"/v3/pay/transactions/out-trade-no/{no}?mchid={cred.WECHATPAY_MCHID}")
    by_id = await sim.v3("GET", f"/v3/pay/transactions/id/{tid}?mchid={cred.WECHATPAY_MCHID}")
    for r in (by_no, by_id):
        sim.v3_verified(r)
        assert r.status_code == 200
        assert r.json()["out_trade_no"] == no and r.json()["transaction_id"] == tid
        assert r.json()["attach"] == "batch=7" and r.json()["trade_state"] == "SUCCESS"
    missing = await sim.v3("GET", f"/v3/pay/transactions/id/4200000000000000000000000000"
                                  f"?mchid={cred.WECHATPAY_MCHID}")
    assert missing.status_code == 404 and missing.json()["code"] == "ORDER_NOT_EXIST"
    sim.v3_verified(missing)
    await sim.settle()  # every notification delivered and acknowledged
    [note] = sim.v3_resources("TRANSACTION.SUCCESS")
    assert note["attach"] == "batch=7" and note["transaction_id"] == tid


async def test_v3_refund_by_transaction_id_has_wechats_fields(sim: WxSim) -> None:
    no, tid = await paid_v3(sim)
    r = await sim.v3("POST", "/v3/refund/domestic/refunds", {
        "transaction_id": tid, "out_refund_no": "R" + no, "notify_url": "http://receiver.test/v3",
        "amount": {"refund": 200, "total": 500, "currency": "CNY"}})
    sim.v3_verified(r)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["transaction_id"] == tid and answer["out_trade_no"] == no
    assert answer["user_received_account"] and REFUND_ID.fullmatch(answer["refund_id"])
    assert answer["status"] == "PROCESSING" and "success_time" not in answer
    q = await sim.v3("GET", f"/v3/refund/domestic/refunds/R{no}")
    sim.v3_verified(q)
    assert q.json()["status"] == "SUCCESS" and q.json()["success_time"]
    assert q.json()["transaction_id"] == tid
    await sim.settle()  # every notification delivered and acknowledged
    [note] = sim.v3_resources("REFUND.SUCCESS")
    assert note["transaction_id"] == tid and note["refund_status"] == "SUCCESS"
    assert note["success_time"] and note["user_received_account"]
    neither = await sim.v3("POST", "/v3/refund/domestic/refunds", {
        "out_refund_no": "R2" + no, "amount": {"refund": 1, "total": 500, "currency": "CNY"}})
    assert neither.status_code == 400 and neither.json()["code"] == "PARAM_ERROR"


# -- API v2 --------------------------------------------------------------------------------
async def test_v2_orderquery_by_transaction_id_with_desc_and_attach(sim: WxSim) -> None:
    no, tid = await paid_v2(sim, attach="batch=8")
    for fields in ({"out_trade_no": no}, {"transaction_id": tid}):
        answer = await sim.v2("/pay/orderquery", fields)
        assert answer["result_code"] == "SUCCESS", answer
        assert answer["out_trade_no"] == no and answer["transaction_id"] == tid
        assert answer["trade_state"] == "SUCCESS" and answer["trade_state_desc"] == "支付成功"
        assert answer["attach"] == "batch=8"
    await sim.settle()  # every notification delivered and acknowledged
    [note] = sim.v2_notes()
    assert note["attach"] == "batch=8" and note["transaction_id"] == tid


async def test_v2_refund_by_transaction_id_answers_transaction_id_and_cash_fee(sim: WxSim
                                                                               ) -> None:
    no, tid = await paid_v2(sim)
    answer = await sim.v2("/secapi/pay/refund", {
        "transaction_id": tid, "out_refund_no": "R" + no, "total_fee": "500",
        "refund_fee": "120"})
    assert answer["result_code"] == "SUCCESS", answer
    assert answer["transaction_id"] == tid and answer["out_trade_no"] == no
    assert answer["cash_fee"] == "500" and answer["refund_fee"] == "120"
    assert REFUND_ID.fullmatch(answer["refund_id"])


@pytest.mark.parametrize("by", ["out_refund_no", "refund_id", "transaction_id",
                                "out_trade_no"])
async def test_v2_refundquery_by_any_of_the_four_ids(sim: WxSim, by: str) -> None:
    no, tid = await paid_v2(sim)
    first = await sim.v2("/secapi/pay/refund", {"out_trade_no": no, "out_refund_no": "RA" + no,
                                                "total_fee": "500", "refund_fee": "100"})
    await sim.v2("/secapi/pay/refund", {"out_trade_no": no, "out_refund_no": "RB" + no,
                                        "total_fee": "500", "refund_fee": "50"})
    key = {"out_refund_no": "RA" + no, "refund_id": first["refund_id"], "transaction_id": tid,
           "out_trade_no": no}[by]
    answer = await sim.v2("/pay/refundquery", {by: key})
    assert answer["result_code"] == "SUCCESS", answer
    assert answer["transaction_id"] == tid and answer["out_trade_no"] == no
    listed = {answer[f"out_refund_no_{n}"] for n in range(int(answer["refund_count"]))}
    # One refund by its own ids; all of the order's by the order's ids.
    assert listed == ({"RA" + no} if by in ("out_refund_no", "refund_id")
                      else {"RA" + no, "RB" + no})
    assert answer["refund_status_0"] == "SUCCESS" and answer["refund_success_time_0"]


async def test_v2_closing_a_closed_order_is_orderclosed(sim: WxSim) -> None:
    no = order_no()
    await sim.v2_order(no)
    sim.clock.advance(301)  # WeChat's 5 minutes (× time scale) before a close
    assert (await sim.v2("/pay/closeorder", {"out_trade_no": no}))["result_code"] == "SUCCESS"
    again = await sim.v2("/pay/closeorder", {"out_trade_no": no})
    assert again["result_code"] == "FAIL" and again["err_code"] == "ORDERCLOSED"
    answer = await sim.v2("/pay/orderquery", {"out_trade_no": no})
    assert answer["trade_state"] == "CLOSED" and answer["trade_state_desc"] == "已关闭"


async def test_v2_refund_notification_has_wechats_fields(sim: WxSim) -> None:
    from minigate.providers.wechatpay import v2sign
    from minigate.providers.wechatpay.xml import parse_xml

    no, tid = await paid_v2(sim)
    await sim.v2("/secapi/pay/refund", {"out_trade_no": no, "out_refund_no": "R" + no,
                                        "total_fee": "500", "refund_fee": "500",
                                        "notify_url": "http://receiver.test/v2"})
    await sim.settle()  # every notification delivered and acknowledged
    note = next(n for n in sim.v2_notes() if "req_info" in n)
    inner = parse_xml(v2sign.decrypt_req_info(note["req_info"], sim.creds.wechatpay_apiv2_key),
                      root="root")
    assert inner["transaction_id"] == tid and inner["refund_status"] == "SUCCESS"
    assert inner["success_time"] and inner["refund_recv_accout"]
