"""The simulated WeChat Pay core that every WeChat-reselling simulator creates prepays in.

A prepay knows its AppID, merchant, payer openid, amount, expiry, and which simulator owns
it (and which of the owner's records it belongs to). The owner says whether a ``paySign`` is
right, and is told when the wallet pays; it then sends its own notification.

A simulator keeps every prepay it creates until the sandbox's retention policy forgets its
payment (``retention``: 24 hours by default), so what a prepay holds stays in the process
that long. It holds plain data and references to long-lived objects only, no
closures: each closure is a function, a tuple and its cells for the garbage collector to
walk at every full collection (in a sandbox that has seen many orders, those collections
were the slowest requests' pauses; ``docs/performance.md``, round 9).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from minigate.clock import Clock
from minigate.providers.wechatpay import v2sign

PREPAY_TTL = timedelta(hours=2)


def digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def new_transaction_id(when: datetime) -> str:
    """28 digits like WeChat's: ``4200`` + 6 + the date + 10 random digits."""
    return "4200" + digits(6) + when.strftime("%Y%m%d") + digits(10)


class PrepayOwner(Protocol):
    """The simulator a prepay belongs to."""

    def pay_sign_ok(self, prepay: Prepay, params: Mapping[str, str]) -> bool:
        """Would the WeChat app accept these ``wx.requestPayment`` params for ``prepay``?"""

    async def prepay_paid(self, prepay: Prepay) -> None:
        """The wallet has paid ``prepay`` (its status, time and transaction id are set)."""


@dataclass
class Prepay:
    prepay_id: str
    appid: str
    mchid: str
    openid: str
    amount_minor: int
    currency: str
    description: str
    created_at: datetime
    expires_at: datetime
    owner: PrepayOwner
    #: the owner's record of the payment this prepay is for (an order, a transaction…)
    record: Any = None
    status: str = "NOTPAY"  # NOTPAY, SUCCESS, CLOSED, REFUND
    transaction_id: str = ""
    paid_at: datetime | None = None
    refunded_minor: int = 0
    extra: dict[str, object] = field(default_factory=dict)


class WechatCore:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.prepays: dict[str, Prepay] = {}

    def create_prepay(
        self, *, appid: str, mchid: str, openid: str, amount_minor: int, currency: str,
        description: str, expires_at: datetime | None,
        owner: PrepayOwner, record: Any = None,
    ) -> Prepay:
        now = self.clock.now()
        prepay_id = "wx" + now.strftime("%d%H%M%S") + secrets.token_hex(14)
        limit = now + PREPAY_TTL
        prepay = Prepay(
            prepay_id, appid, mchid, openid, amount_minor, currency, description, now,
            min(expires_at, limit) if expires_at else limit, owner, record,
        )
        self.prepays[prepay_id] = prepay
        return prepay

    def forget(self, prepay_id: str) -> None:
        """Its owner forgot the payment (``retention``): so does WeChat."""
        self.prepays.pop(prepay_id, None)

    def close(self, prepay_id: str) -> bool:
        prepay = self.prepays.get(prepay_id)
        if prepay is None or prepay.status != "NOTPAY":
            return False
        prepay.status = "CLOSED"
        return True

    async def request_payment(self, params: Mapping[str, str], outcome: str) -> dict[str, str]:
        """What ``wx.requestPayment`` does with the params a mini program passes it."""
        for name in ("timeStamp", "nonceStr", "package", "signType", "paySign"):
            if not isinstance(params.get(name), str) or not params.get(name):
                return {"errMsg": f"requestPayment:fail parameter error: {name} is required"}
        package = params["package"]
        prepay = self.prepays.get(package.removeprefix("prepay_id="))
        if not package.startswith("prepay_id=") or prepay is None:
            return {"errMsg": "requestPayment:fail prepay_id not found"}
        if not prepay.owner.pay_sign_ok(prepay, params):
            return {"errMsg": "requestPayment:fail 支付验证签名失败 (paySign is wrong)"}
        if prepay.status == "SUCCESS":
            return {"errMsg": "requestPayment:fail order already paid"}
        if prepay.status != "NOTPAY":
            return {"errMsg": "requestPayment:fail order closed"}
        if self.clock.now() >= prepay.expires_at:
            return {"errMsg": "requestPayment:fail prepay_id expired"}
        if outcome == "cancel":
            return {"errMsg": "requestPayment:fail cancel"}
        if outcome == "fail":
            return {"errMsg": "requestPayment:fail payment declined by the bank"}
        prepay.status = "SUCCESS"
        prepay.paid_at = self.clock.now()
        prepay.transaction_id = new_transaction_id(prepay.paid_at)
        await prepay.owner.prepay_paid(prepay)
        return {"errMsg": "requestPayment:ok"}


def md5_pay_params(appid: str, key: str, prepay_id: str, time_stamp: str,
                   nonce: str) -> dict[str, str]:
    """``wx.requestPayment`` params signed the v2 way (MD5), as the PSPs' prepays are."""
    package = f"prepay_id={prepay_id}"
    pay_sign = v2sign.sign(v2sign.pay_sign_params(appid, time_stamp, nonce, package, v2sign.MD5),
                           key)
    return {"appId": appid, "timeStamp": time_stamp, "nonceStr": nonce, "package": package,
            "signType": v2sign.MD5, "paySign": pay_sign}


def md5_pay_sign_ok(appid: str, key: str, params: Mapping[str, str]) -> bool:
    """What the WeChat app checks before paying an MD5-signed prepay."""
    fields = v2sign.pay_sign_params(appid, str(params.get("timeStamp")),
                                    str(params.get("nonceStr")), str(params.get("package")),
                                    str(params.get("signType")))
    fields["sign"] = str(params.get("paySign"))
    return params.get("signType") == v2sign.MD5 and v2sign.verify(fields, key)


class Md5PrepayOwner:
    """The ``paySign`` check of a PSP simulator (Latipay, QFPay, CBTIS) whose prepays are
    MD5-signed with its merchant's WeChat key: each prepay's record has a ``merchant``
    with a ``wechat_key``. The simulator still says what ``prepay_paid`` does."""

    def pay_sign_ok(self, prepay: Prepay, params: Mapping[str, str]) -> bool:
        return md5_pay_sign_ok(prepay.appid, prepay.record.merchant.wechat_key, params)
