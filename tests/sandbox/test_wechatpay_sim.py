"""The WeChat Pay simulator enforces WeChat's rules (driven through minigate's connectors)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from minigate.domain.money import Money
from minigate.errors import ProviderError
from minigate.providers.base import (
    Channel,
    HttpRequest,
    PaymentRef,
    PaymentRequest,
    ProviderRefundStatus,
    RefundRequest,
)
from minigate.providers.wechatpay import v3_messages as v3
from tests.support import PUBLIC_URL, Harness


async def payment_request(gw: Harness, order_no: str, fen: int = 1000) -> PaymentRequest:
    code = await gw.login_code("bob")
    openid = await gw.ctx.login.openid(code)
    now = gw.ctx.clock.now()
    return PaymentRequest(order_no, Money(fen, "CNY"), Channel.WECHAT, "tea",
                          f"{PUBLIC_URL}/v1/notify/wechatpay", now + timedelta(hours=1), now,
                          openid=openid)


@pytest.mark.parametrize("provider", ["wechatpay", "wechatpay-v2"])
async def test_out_trade_no_reuse(sqlite_gateway: Harness, provider: str) -> None:
    client = sqlite_gateway.ctx.provider(provider)
    req = await payment_request(sqlite_gateway, "SIMTEST000001")
    first = await client.create_payment(req)
    again = await client.create_payment(req)
    assert first.wechat is not None and again.wechat is not None
    assert first.wechat["package"] == again.wechat["package"]  # same prepay_id
    with pytest.raises(ProviderError) as exc:
        await client.create_payment(replace(req, amount=Money(999, "CNY")))
    # WeChat's real answer (v3: HTTP 400; v2: result_code FAIL), not OUT_TRADE_NO_USED.
    assert exc.value.provider_code == "INVALID_REQUEST"
    assert "201" in exc.value.message and not exc.value.retryable


@pytest.mark.parametrize("provider", ["wechatpay", "wechatpay-v2"])
async def test_openid_must_belong_to_the_appid(sqlite_gateway: Harness, provider: str) -> None:
    client = sqlite_gateway.ctx.provider(provider)
    req = replace(await payment_request(sqlite_gateway, "SIMTEST000002"),
                  openid="oSomeoneElsesOpenid000000000")
    with pytest.raises(ProviderError) as exc:
        await client.create_payment(req)
    assert exc.value.provider_code == "PARAM_ERROR"


async def test_v3_bad_signature_and_stale_timestamp(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    client = gw.ctx.provider("wechatpay")
    req = await payment_request(gw, "SIMTEST000003")
    now = int(gw.ctx.clock.now().timestamp())
    good = v3.build_create(client.account, req, now, "N1")
    tampered = HttpRequest(good.method, good.url, good.headers,
                           good.body.replace(b'"total":1000', b'"total":1'))
    r = await gw.api.post(good.url, content=tampered.body, headers=dict(tampered.headers))
    assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR"
    stale = v3.build_create(client.account, req, now - 301, "N2")
    r = await gw.api.post(stale.url, content=stale.body, headers=dict(stale.headers))
    assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR"
    r = await gw.api.post(good.url, content=good.body, headers=dict(good.headers))
    assert r.status_code == 200 and r.json()["prepay_id"].startswith("wx")


@pytest.mark.parametrize("provider", ["wechatpay", "wechatpay-v2"])
async def test_refund_above_paid_is_refused(sqlite_gateway: Harness, provider: str) -> None:
    gw = sqlite_gateway
    order = await gw.create_order(provider=provider, currency="CNY", amount="10.00")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    sim_order = next(iter(gw.world.wechatpay.orders.values()))
    ref = PaymentRef(sim_order.out_trade_no, Money(1000, "CNY"), gw.ctx.clock.now())
    client = gw.ctx.provider(provider)
    ok = await client.refund(RefundRequest(ref, "RFSIM0001", Money(600, "CNY")))
    assert ok.status in (ProviderRefundStatus.PENDING, ProviderRefundStatus.SUCCEEDED)
    refused = await client.refund(RefundRequest(ref, "RFSIM0002", Money(500, "CNY")))
    assert refused.status is ProviderRefundStatus.FAILED
    assert sim_order.refunded() == 600
    # The same refund number again is the same refund, not a second one.
    await client.refund(RefundRequest(ref, "RFSIM0001", Money(600, "CNY")))
    assert sim_order.refunded() == 600


@pytest.mark.parametrize("provider", ["wechatpay", "wechatpay-v2"])
async def test_time_expire_reaches_the_prepay(sqlite_gateway: Harness, provider: str) -> None:
    """v3 ``time_expire`` (RFC 3339) and v2 ``time_expire`` (yyyyMMddHHmmss, +08:00) both
    become the prepay's expiry: after it, the wallet refuses to pay."""
    gw = sqlite_gateway
    client = gw.ctx.provider(provider)
    req = await payment_request(gw, "SIMTEST000004")
    req = replace(req, expires_at=gw.ctx.clock.now().replace(microsecond=0)
                  + timedelta(minutes=20))
    created = await client.create_payment(req)
    assert created.wechat is not None
    prepay = gw.world.wechat.prepays[created.wechat["package"].removeprefix("prepay_id=")]
    assert prepay.expires_at == req.expires_at
