"""The Latipay simulator enforces what Latipay enforces, with Latipay's own error codes."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from minigate.providers.latipay import signing
from minigate.sandbox import credentials as cred
from minigate.sandbox.latipay import RETRY_EVERY
from tests.support import Harness

BASE = "/sandbox/latipay"
KEY = cred.LATIPAY_API_KEY


async def _post(h: Harness, path: str, params: dict[str, Any], *, key: str = KEY,
                signature: str | None = None) -> dict[str, Any]:
    body = dict(params)
    body["signature"] = signature if signature is not None else signing.sign_request(params, key)
    r = await h.api.post(BASE + path, json=body)
    assert r.status_code == 200, r.text  # Latipay: 200 whenever the request reached it
    data: dict[str, Any] = r.json()
    return data


async def _wechat_params(h: Harness, **overrides: str) -> dict[str, str]:
    await h.login_code("bob")  # the simulated WeChat now knows bob's openid for the app
    params = {"user_id": cred.LATIPAY_USER_ID, "wallet_id": cred.LATIPAY_WALLET_ID,
              "amount": "12.30", "notify_url": "http://merchant.test/latipay",
              "merchant_reference": "REF-1", "product_name": "Flat white",
              "app_id": cred.MINI_APP_ID,
              "open_id": h.world.login.openid_for(cred.MINI_APP_ID, "bob")}
    params.update(overrides)
    return params


def _alipay_params(**overrides: str) -> dict[str, str]:
    params = {"user_id": cred.LATIPAY_USER_ID, "wallet_id": cred.LATIPAY_WALLET_ID,
              "amount": "25.00", "callback_url": "http://merchant.test/latipay",
              "merchant_reference": "REF-A", "ip": "10.0.0.1", "version": "2.0",
              "product_name": "Pinot Noir, Otago"}
    params.update(overrides)
    return params


async def test_bad_signature_is_206(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    params = await _wechat_params(h)
    assert (await _post(h, "/v2/miniapppay", params, key="not-the-key"))["code"] == 206
    assert (await _post(h, "/v2/miniapppay", params, signature="0" * 64))["code"] == 206
    signed_other = signing.sign_request({**params, "amount": "0.01"}, KEY)
    assert (await _post(h, "/v2/miniapppay", params, signature=signed_other))["code"] == 206
    assert h.world.latipay.orders == {}


@pytest.mark.parametrize("missing", ["amount", "notify_url", "merchant_reference",
                                     "product_name", "app_id", "open_id"])
async def test_missing_fields_are_204(sqlite_gateway: Harness, missing: str) -> None:
    h = sqlite_gateway
    params = {k: v for k, v in (await _wechat_params(h)).items() if k != missing}
    answer = await _post(h, "/v2/miniapppay", params)
    assert answer["code"] == 204 and missing in answer["message"]
    assert h.world.latipay.orders == {}


async def test_unknown_user_and_wrong_wallet(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    params = await _wechat_params(h, user_id="U000NOBODY")
    assert (await _post(h, "/v2/miniapppay", params))["code"] == 205
    params = await _wechat_params(h, wallet_id="W000OTHER")
    assert (await _post(h, "/v2/miniapppay", params))["code"] == 301


@pytest.mark.parametrize("amount", ["12.3", "12", "12.300", "1,00", "-1.00", "0.00", "1e3",
                                    " 12.30"])
async def test_bad_amount_formats_are_207(sqlite_gateway: Harness, amount: str) -> None:
    h = sqlite_gateway
    answer = await _post(h, "/v2/miniapppay", await _wechat_params(h, amount=amount))
    assert answer["code"] == 207, amount
    assert h.world.latipay.orders == {}


async def test_amount_as_a_json_number_is_207(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    params: dict[str, Any] = await _wechat_params(h)
    params["amount"] = 12.3
    assert (await _post(h, "/v2/miniapppay", params))["code"] == 207


async def test_merchant_reference_reuse(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    params = await _wechat_params(h)
    first = await _post(h, "/v2/miniapppay", params)
    assert first["code"] == 0
    assert await _post(h, "/v2/miniapppay", params) == first  # a retry: the same answer
    other = await _post(h, "/v2/miniapppay", {**params, "amount": "99.00"})
    assert other["code"] == 207 and "merchant_reference" in other["message"]
    assert len(h.world.latipay.orders) == 1


async def test_openid_of_another_app_is_refused(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    answer = await _post(h, "/v2/miniapppay", await _wechat_params(h, open_id="oNotAUser"))
    assert answer["code"] == 207


async def test_wechat_params_pay_in_the_wallet(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    created = await _post(h, "/v2/miniapppay", await _wechat_params(h))
    payment = created["payment"]
    assert set(payment) == {"nonceStr", "paySign", "signType", "timeStamp", "packageStr"}
    assert payment["signType"] == "MD5" and payment["packageStr"].startswith("prepay_id=")
    wx = {k: v for k, v in payment.items() if k != "packageStr"} | {
        "package": payment["packageStr"]}
    tampered = await h.api.post("/sandbox/wallet/requestPayment", json={**wx, "paySign": "X"})
    assert tampered.json()["errMsg"] != "requestPayment:ok"
    paid = await h.api.post("/sandbox/wallet/requestPayment", json=wx)
    assert paid.json() == {"errMsg": "requestPayment:ok"}
    order = h.world.latipay.by_order_id[created["paydata"]["order_id"]]
    assert order.status == "paid"


async def test_minialipay_checks_version_and_gives_gatewaydata(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    assert (await _post(h, "/v2/minialipay", _alipay_params(version="1.0")))["code"] == 207
    missing_ip = {k: v for k, v in _alipay_params().items() if k != "ip"}
    assert (await _post(h, "/v2/minialipay", missing_ip))["code"] == 204
    created = await _post(h, "/v2/minialipay", _alipay_params())
    gateway = created["gatewaydata"]
    assert gateway["total_fee"] == "25.00" and gateway["sign"]
    # Every field of Latipay's published example (seed 003), in its order.
    assert list(gateway) == [
        "service", "partner", "_input_charset", "sign_type", "sign", "notify_url", "return_url",
        "subject", "body", "out_trade_no", "currency", "total_fee", "supplier",
        "secondary_merchant_id", "secondary_merchant_name", "secondary_merchant_industry",
        "product_code", "app_pay"]
    assert gateway["secondary_merchant_id"] == cred.LATIPAY_WALLET_ID
    assert gateway["supplier"] == gateway["secondary_merchant_name"] != ""
    assert gateway["body"] == gateway["secondary_merchant_industry"].strip() != ""
    assert gateway["return_url"].startswith("https://")
    order_str = "&".join(f"{k}={v}" for k, v in gateway.items())
    assert (await h.api.post("/sandbox/wallet/tradePay",
                             json={"orderStr": order_str + "x"})).json()["resultCode"] != "9000"
    paid = await h.api.post("/sandbox/wallet/tradePay", json={"orderStr": order_str})
    assert paid.json()["resultCode"] == "9000"


async def _query(h: Harness, reference: str, key: str = KEY) -> httpx.Response:
    params = {"merchant_reference": reference, "user_id": cred.LATIPAY_USER_ID}
    return await h.api.get(f"{BASE}/v2/transaction/{reference}", params={
        "user_id": cred.LATIPAY_USER_ID, "signature": signing.sign_request(params, key)})


async def test_query_answers_a_signed_json_number(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    assert (await _query(h, "REF-1")).json()["code"] == 201  # order not exist
    await _post(h, "/v2/miniapppay", await _wechat_params(h))
    assert (await _query(h, "REF-1", key="wrong")).json()["code"] == 206
    r = await _query(h, "REF-1")
    assert b'"amount": 12.30' in r.content  # a JSON number, two decimals kept
    data = json.loads(r.content, parse_float=Decimal)
    assert data["amount"] == Decimal("12.30") and data["status"] == "pending"
    assert data["signature"] == signing.result_signature(
        KEY, "REF-1", "wechat", "pending", "NZD", "12.30")


async def _paid_order(h: Harness) -> str:
    created = await _post(h, "/v2/miniapppay", await _wechat_params(h, amount="10.00"))
    payment = created["payment"]
    wx = {k: v for k, v in payment.items() if k != "packageStr"} | {
        "package": payment["packageStr"]}
    await h.api.post("/sandbox/wallet/requestPayment", json=wx)
    return str(created["paydata"]["order_id"])


def _refund(order_id: str, amount: str, reference: str) -> dict[str, str]:
    return {"user_id": cred.LATIPAY_USER_ID, "order_id": order_id, "refund_amount": amount,
            "reference": reference}


async def test_refund_never_more_than_paid(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    unpaid = await _post(h, "/v2/miniapppay", await _wechat_params(h, merchant_reference="U"))
    refused = await _post(h, "/refund", _refund(unpaid["paydata"]["order_id"], "1.00", "RF0"))
    assert refused["code"] == 550  # nothing was paid
    order_id = await _paid_order(h)
    assert (await _post(h, "/refund", _refund("nosuch", "1.00", "RF1")))["code"] == 551
    assert (await _post(h, "/refund", _refund(order_id, "4.00", "RF1 x")))["code"] == 0
    assert (await _post(h, "/refund", _refund(order_id, "4.00", "RF1 x")))["code"] == 562
    assert (await _post(h, "/refund", _refund(order_id, "6.01", "RF2")))["code"] == 550
    assert (await _post(h, "/refund", _refund(order_id, "6", "RF3")))["code"] == 550
    assert (await _post(h, "/refund", _refund(order_id, "6.00", "RF4")))["code"] == 0
    assert h.world.latipay.by_order_id[order_id].refunded_minor == 1000


async def test_cancel(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    created = await _post(h, "/v2/miniapppay", await _wechat_params(h))
    cancel = {"user_id": cred.LATIPAY_USER_ID, "merchant_reference": "REF-1"}
    assert (await _post(h, "/cancel", cancel, key="wrong"))["code"] == 206
    assert (await _post(h, "/cancel", cancel))["code"] == 0
    payment = created["payment"]
    wx = {k: v for k, v in payment.items() if k != "packageStr"} | {
        "package": payment["packageStr"]}
    paid = await h.api.post("/sandbox/wallet/requestPayment", json=wx)
    assert paid.json()["errMsg"] != "requestPayment:ok"  # the prepay was closed too
    paid_ref = await _post(h, "/v2/miniapppay", await _wechat_params(h, merchant_reference="P"))
    wx = {k: v for k, v in paid_ref["payment"].items() if k != "packageStr"} | {
        "package": paid_ref["payment"]["packageStr"]}
    await h.api.post("/sandbox/wallet/requestPayment", json=wx)
    cancel_paid = {"user_id": cred.LATIPAY_USER_ID, "merchant_reference": "P"}
    assert (await _post(h, "/cancel", cancel_paid))["code"] != 0
    unknown = {"user_id": cred.LATIPAY_USER_ID, "merchant_reference": "nosuch"}
    assert (await _post(h, "/cancel", unknown))["code"] == 201


async def test_notification_is_signed_form_resent_until_sent(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    seen: list[httpx.Request] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="sent" if len(seen) >= 3 else "ok")

    h.network.routes["merchant.test"] = httpx.MockTransport(receiver)
    control = await h.api.post(BASE + "/control", json={"retry_every_seconds": 5})
    assert control.json() == {"retry_every_seconds": 5.0}
    assert RETRY_EVERY == 30.0  # Latipay: "about 30 seconds"
    await _paid_order(h)
    await h.world.notifier.drain()
    assert len(seen) == 3  # re-sent until the body is exactly "sent"
    assert seen[0].headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(seen[0].content.decode()))
    assert form["status"] == "paid" and form["amount"] == "10.00"
    assert form["signature"] == signing.result_signature(
        KEY, form["merchant_reference"], "wechat", "paid", "NZD", "10.00")
    assert all(r.content == seen[0].content for r in seen)


async def test_control_refuses_a_non_positive_interval(sqlite_gateway: Harness) -> None:
    r = await sqlite_gateway.api.post(BASE + "/control", json={"retry_every_seconds": 0})
    assert r.status_code in (400, 422)


async def test_resend_interval_is_thirty_seconds_without_limit(sqlite_gateway: Harness) -> None:
    h = sqlite_gateway
    schedules: list[Any] = []
    original = h.world.notifier.send

    def recording_send(*args: Any, **kwargs: Any) -> Any:
        schedules.append(args[4])
        return original(*args, **kwargs)

    h.world.notifier.send = recording_send
    h.network.routes["merchant.test"] = httpx.MockTransport(
        lambda request: httpx.Response(200, text="sent"))
    await _paid_order(h)
    assert len(schedules) == 1
    assert list(itertools.islice(schedules[0], 10_000)) == [30.0] * 10_000
