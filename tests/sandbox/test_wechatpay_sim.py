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


async def test_notifications_follow_wechats_timetable_until_acked() -> None:
    """15 re-sends after the first, spaced 15s/15s/30s/3m/… × time_scale, stopped by the
    first ack; a merchant that never acks gets all 16 and no more."""
    import asyncio

    import httpx

    from minigate.sandbox.notifier import Notifier
    from minigate.sandbox.wechatpay import TIMETABLE

    assert TIMETABLE == (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800,
                         10800, 21600, 21600)
    assert sum(TIMETABLE) == 24 * 3600 + 4 * 60  # WeChat: "总计 24h4m"
    loop = asyncio.get_running_loop()
    times: list[float] = []

    def merchant(fail_first: int) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            times.append(loop.time())
            return httpx.Response(500 if len(times) <= fail_first else 204)
        return httpx.MockTransport(handle)

    scale = 0.001
    async with httpx.AsyncClient(transport=merchant(4)) as http:
        notifier = Notifier(http, time_scale=scale)
        delivery = notifier.send("t", "http://merchant.test/n", b"{}", {}, TIMETABLE,
                                 lambda r: r.status_code in (200, 204))
        await notifier.drain(5)
    assert delivery.acked and delivery.statuses == [500, 500, 500, 500, 204]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for gap, wait in zip(gaps, TIMETABLE, strict=False):
        assert gap >= wait * scale * 0.9

    times.clear()
    async with httpx.AsyncClient(transport=merchant(10**6)) as http:
        notifier = Notifier(http, time_scale=0.00001)
        delivery = notifier.send("t", "http://merchant.test/n", b"{}", {}, TIMETABLE,
                                 lambda r: r.status_code in (200, 204))
        await notifier.drain(10)
    assert not delivery.acked and delivery.attempts == len(TIMETABLE) + 1
