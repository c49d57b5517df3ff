"""What the simulators keep per payment is plain data.

A provider keeps every order it has seen, and the simulators keep theirs for a day by
default (``minigate.sandbox.retention``). Everything they keep is walked by every full
garbage collection of the process (in sandbox mode, minigate's own), so a full
collection's pause grows with what each payment leaves behind. These tests hold the
simulators to records without closures, login codes that go once used, and rate windows
that go once idle.
"""

from __future__ import annotations

import gc
import types

import pytest

from minigate.clock import FrozenClock
from minigate.sandbox import credentials as cred
from minigate.sandbox.login import LoginSim
from tests.support import Harness

CURRENCY = {"latipay": cred.LATIPAY_CURRENCY, "qfpay": cred.QFPAY_CURRENCY,
            "cbtis": cred.CBTIS_CURRENCY, "wechatpay": "CNY", "wechatpay-v2": "CNY"}

#: Objects the collector tracks, kept per paid WeChat payment (order, prepay and what they
#: hold), in-process through minigate's own checkout. With closures in each prepay and a
#: record per login code it was 14 for Latipay.
MOST_KEPT_PER_PAYMENT = 8


#: How each simulator's record shows it was told of the payment.
PAID = {"latipay": lambda world, order: order.status == "paid",
        "qfpay": lambda world, txn: txn.paid_at is not None,
        "cbtis": lambda world, intent: intent.status == "SUCCEEDED",
        "wechatpay": lambda world, order: order in world.wechatpay.by_transaction_id.values(),
        "wechatpay-v2": lambda world, order: order in world.wechatpay.by_transaction_id.values()}


def _closures(obj: object) -> list[object]:
    """Functions, bound methods and cells among an object's attribute values."""
    kinds = (types.FunctionType, types.MethodType, types.CellType, types.LambdaType)
    return [v for v in vars(obj).values() if isinstance(v, kinds)]


@pytest.mark.parametrize("provider", list(CURRENCY))
async def test_a_paid_prepay_holds_no_closures(sqlite_gateway: Harness, provider: str) -> None:
    gw = sqlite_gateway
    order = await gw.create_order(provider=provider, currency=CURRENCY[provider],
                                  amount="10.00")
    pay = await gw.pay(order)
    # The owner checks the paySign (through the reference): a wrong one is refused...
    wrong = {**pay, "wechat": {**pay["wechat"], "paySign": "0" * 32}}
    assert "paySign is wrong" in (await gw.shopper_pays(wrong))["errMsg"]
    # ...and the right one pays
    assert await gw.shopper_pays(pay) == {"errMsg": "requestPayment:ok"}
    (prepay,) = gw.world.wechat.prepays.values()
    assert prepay.status == "SUCCESS"
    assert PAID[provider](gw.world, prepay.record)  # the owner was told, through the reference
    assert _closures(prepay) == []
    assert _closures(prepay.record) == []
    assert prepay.record is not None and prepay.owner is not None


async def test_a_paid_alipay_trade_holds_no_closures(sqlite_gateway: Harness) -> None:
    gw = sqlite_gateway
    order = await gw.create_order(provider="latipay", channel="alipay")
    await gw.shopper_pays(await gw.pay(order))
    await gw.wait_status(order["id"], "paid")
    (trade,) = gw.world.alipay.trades.values()
    assert _closures(trade) == [] and trade.record is not None


async def test_kept_objects_per_payment_are_few(sqlite_gateway: Harness) -> None:
    """Counted across the whole process, so minigate keeping anything per payment would
    show here too."""
    gw = sqlite_gateway

    async def payments(n: int) -> None:
        for i in range(n):
            order = await gw.create_order(provider="latipay")
            await gw.pay(order, user=f"shopper{i % 20}")  # within WeChat's login quota

    await payments(30)  # caches, pools and first-use state settle
    gc.collect()
    before = len(gc.get_objects())
    n = 150
    await payments(n)
    gc.collect()
    kept = (len(gc.get_objects()) - before) / n
    assert len(gw.world.wechat.prepays) == 30 + n  # the simulator does keep every prepay
    assert kept <= MOST_KEPT_PER_PAYMENT, kept


def test_login_codes_are_plain_tuples_and_go_once_used() -> None:
    clock = FrozenClock()
    login = LoginSim(clock, {"wxapp": "secret"})
    code = login.issue_code("ann", "wxapp")
    gc.collect()
    assert not gc.is_tracked(login._codes[code])  # strings and a datetime only
    assert "openid" in login.jscode2session("wxapp", "secret", code)
    assert code not in login._codes
    assert login.jscode2session("wxapp", "secret", code)["errcode"] == 40029


def test_idle_rate_windows_are_dropped_after_a_minute() -> None:
    clock = FrozenClock()
    login = LoginSim(clock, {"wxapp": "secret"})
    for user in ("ann", "ben", "cat"):
        login.jscode2session("wxapp", "secret", login.issue_code(user, "wxapp"))
    assert set(login._recent) == {"ann", "ben", "cat"}
    clock.advance(61)
    login.jscode2session("wxapp", "secret", login.issue_code("dan", "wxapp"))
    assert set(login._recent) == {"dan"}
    # A busy user's window is kept, and still counts towards the per-minute limit.
    for _ in range(99):
        login.jscode2session("wxapp", "secret", login.issue_code("dan", "wxapp"))
    clock.advance(30)
    assert login.jscode2session("wxapp", "secret",
                                login.issue_code("dan", "wxapp"))["errcode"] == 45011
