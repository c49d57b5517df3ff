"""The QFPay simulator enforces what QFPay enforces, with QFPay's codes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx

from minigate.providers.qfpay import signing
from minigate.sandbox import credentials as cred
from minigate.sandbox.qfpay import NOTIFY_SCHEDULE
from tests.support import Harness

BASE = "/sandbox/qfpay/trade/v1"


async def _post(h: Harness, path: str, form: dict[str, str], *, key: str = cred.QFPAY_CLIENT_KEY,
                sign_type: str = "MD5", sign: str | None = None) -> dict[str, Any]:
    headers = {"X-QF-APPCODE": cred.QFPAY_APP_CODE, "X-QF-SIGNTYPE": sign_type,
               "X-QF-SIGN": sign if sign is not None else signing.sign(form, key, sign_type),
               "Content-Type": "application/x-www-form-urlencoded"}
    r = await h.api.post(BASE + path, content=urlencode(form).encode(), headers=headers)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def _openid(h: Harness) -> str:
    await h.login_code("bob")  # the simulated WeChat now knows bob's openid for the app
    return str(h.world.login.openid_for(cred.MINI_APP_ID, "bob"))


async def _payment_form(h: Harness, **overrides: str) -> dict[str, str]:
    form = {"pay_type": "800213", "sub_openid": await _openid(h), "txamt": "1000",
            "txcurrcd": "HKD", "out_trade_no": "OUT-1", "txdtm": "2026-03-01 12:00:00",
            "expired_time": "30"}
    form.update(overrides)
    return form


async def test_signature_is_enforced(sqlite_gateway: Harness) -> None:
    form = await _payment_form(sqlite_gateway)
    assert (await _post(sqlite_gateway, "/payment", form, key="wrong"))["respcd"] == "1108"
    assert (await _post(sqlite_gateway, "/payment", form, sign=""))["respcd"] == "1108"
    sha = await _post(sqlite_gateway, "/payment", form, sign_type="SHA256")
    assert sha["respcd"] == "0000" and sha["pay_params"]["package"].startswith("prepay_id=")


async def test_parameters_are_enforced(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    for bad in ({"txamt": "10.00"}, {"txamt": "0"}, {"expired_time": "4"},
                {"expired_time": "121"}, {"txcurrcd": "NZD"}, {"txdtm": "2026-03-01T12:00"},
                {"sub_openid": "oSomeoneElse"}, {"mchid": "NOTMINE"}):
        assert (await _post(h, "/payment", await _payment_form(h, **bad)))["respcd"] == "1104", bad
    missing = await _payment_form(h)
    del missing["sub_openid"]
    assert (await _post(h, "/payment", missing))["respcd"] == "1104"


async def test_out_trade_no_is_unique(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    form = await _payment_form(h)
    first = await _post(h, "/payment", form)
    assert await _post(h, "/payment", form) == first  # a retry gets the same answer
    other = await _post(h, "/payment", {**form, "txamt": "2000"})
    assert other["respcd"] == "1102"


async def test_refund_close_and_query_semantics(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    created = await _post(h, "/payment", await _payment_form(h))
    syssn = created["syssn"]
    refund = {"syssn": syssn, "out_trade_no": "RF-1", "txamt": "100",
              "txdtm": "2026-03-01 12:01:00"}
    assert (await _post(h, "/refund", refund))["respcd"] == "1261"  # not paid yet
    paid = await h.api.post("/sandbox/wallet/requestPayment", json=created["pay_params"])
    assert paid.json() == {"errMsg": "requestPayment:ok"}
    assert (await _post(h, "/close", {"out_trade_no": "OUT-1"}))["respcd"] == "1260"

    ok = await _post(h, "/refund", {**refund, "out_trade_no": "RF-2"})
    assert ok["respcd"] == "0000" and ok["orig_syssn"] == syssn
    too_much = await _post(h, "/refund", {**refund, "out_trade_no": "RF-3", "txamt": "901"})
    assert too_much["respcd"] == "1272"
    query = await _post(h, "/query", {"out_trade_no": "OUT-1,RF-2"})
    items = {i["out_trade_no"]: i for i in query["data"]}
    assert items["OUT-1"]["respcd"] == "0000" and items["OUT-1"]["cancel"] == "5"
    assert items["RF-2"]["order_type"] == "refund" and items["RF-2"]["origssn"] == syssn


async def test_refunds_draw_on_the_unsettled_balance_when_it_is_set(
        sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    created = await _post(h, "/payment", await _payment_form(h))
    paid = await h.api.post("/sandbox/wallet/requestPayment", json=created["pay_params"])
    assert paid.json() == {"errMsg": "requestPayment:ok"}
    control = await h.api.post("/sandbox/qfpay/control", json={"unsettled_minor": 150})
    assert control.json()["unsettled_minor"] == {cred.QFPAY_APP_CODE: 150}
    refund = {"syssn": created["syssn"], "txamt": "151", "txdtm": "2026-03-01 12:01:00"}
    short = await _post(h, "/refund", {**refund, "out_trade_no": "RF-1"})
    assert short["respcd"] == "1269"  # 1000 refundable, 150 to pay it from
    ok = await _post(h, "/refund", {**refund, "out_trade_no": "RF-2", "txamt": "150"})
    assert ok["respcd"] == "0000"
    payment = next(t for t in h.world.qfpay.txns.values() if t.out_trade_no == "OUT-1")
    assert payment.refunded_minor == 150  # the refused refund took nothing
    left = await h.api.post("/sandbox/qfpay/control", json={})
    assert left.json()["unsettled_minor"] == {cred.QFPAY_APP_CODE: 0}  # absent: unchanged
    # a payment adds what it took
    second = await _post(h, "/payment", await _payment_form(h, out_trade_no="OUT-2",
                                                             txamt="700"))
    await h.api.post("/sandbox/wallet/requestPayment", json=second["pay_params"])
    after = await h.api.post("/sandbox/qfpay/control", json={})
    assert after.json()["unsettled_minor"] == {cred.QFPAY_APP_CODE: 700}
    await h.api.post("/sandbox/qfpay/control", json={"unsettled_minor": None})
    unlimited = await _post(h, "/refund", {**refund, "out_trade_no": "RF-3", "txamt": "850"})
    assert unlimited["respcd"] == "0000"  # not modelled: only the refundable amount counts
    for wrong in (-1, 10**15 + 1, "lots"):
        bad = await h.api.post("/sandbox/qfpay/control", json={"unsettled_minor": wrong})
        assert bad.status_code == 422, wrong
    # each field is its own: setting one leaves the others as they are
    await h.api.post("/sandbox/qfpay/control", json={"in_progress": "1145"})
    both = await h.api.post("/sandbox/qfpay/control", json={"unsettled_minor": 5})
    assert both.json() == {"in_progress": "1145", "unsettled_minor": {cred.QFPAY_APP_CODE: 5}}
    off = await h.api.post("/sandbox/qfpay/control", json={"in_progress": None})
    assert off.json() == {"in_progress": None, "unsettled_minor": {cred.QFPAY_APP_CODE: 5}}


async def test_notification_bytes_are_python_json_dumps(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    seen: list[httpx.Request] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="SUCCESS" if len(seen) > 1 else "nope")

    h.network.routes["merchant.test"] = httpx.MockTransport(receiver)
    await h.api.post("/sandbox/qfpay/control", json={"notify_url": "http://merchant.test/n"})
    created = await _post(h, "/payment", await _payment_form(h, goods_name="奶茶"))
    await h.api.post("/sandbox/wallet/requestPayment", json=created["pay_params"])
    await h.world.notifier.drain()
    assert len(seen) == 2  # re-sent until 200 + SUCCESS
    body = seen[0].content
    assert b'", "' in body and b'": "' in body and b"\\u5976\\u8336" in body
    assert body == json.dumps(json.loads(body)).encode()
    assert seen[0].headers["x-qf-sign"] == signing.notification_signature(
        body, cred.QFPAY_CLIENT_KEY)
    assert NOTIFY_SCHEDULE == (120.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)


async def test_notifications_follow_qfpays_timetable(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    schedules: list[list[float]] = []
    original = h.world.notifier.send

    def recording_send(*args: Any, **kwargs: Any) -> Any:
        schedules.append(list(args[4]))
        return original(*args, **kwargs)

    h.world.notifier.send = recording_send
    h.network.routes["merchant.test"] = httpx.MockTransport(
        lambda request: httpx.Response(200, text="SUCCESS"))
    await h.api.post("/sandbox/qfpay/control", json={"notify_url": "http://merchant.test/n"})
    created = await _post(h, "/payment", await _payment_form(h))
    await h.api.post("/sandbox/wallet/requestPayment", json=created["pay_params"])
    await _post(h, "/refund", {"syssn": created["syssn"], "out_trade_no": "RF-9",
                               "txamt": "100", "txdtm": "2026-03-01 12:01:00"})
    # 2m, 10m, 10m, 60m, 2h, 6h, 15h: for the payment and for the refund.
    minutes = [2, 10, 10, 60, 120, 360, 900]
    assert schedules == [[m * 60.0 for m in minutes]] * 2
