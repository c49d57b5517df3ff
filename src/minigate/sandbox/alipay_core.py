"""The simulated Alipay core: trades created by PSP simulators, paid by ``my.tradePay``.

The ``orderStr`` a PSP hands out is the gateway data joined ``k=v&…``; its ``sign`` is MD5
over the sorted parameters (without ``sign``/``sign_type``) plus the partner key, as in
Alipay's classic global-cashier interface, and the wallet checks it before paying.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from minigate.clock import Clock


class TradeOwner(Protocol):
    """The simulator a trade belongs to (a reference, not a closure: see ``wechat_core``)."""

    async def trade_paid(self, trade: Trade) -> None:
        """The wallet has paid ``trade``."""


@dataclass
class Trade:
    trade_no: str
    out_trade_no: str
    partner: str
    amount_minor: int
    currency: str
    total_fee: str
    owner: TradeOwner
    #: the owner's record of the payment this trade is for
    record: Any = None
    status: str = "WAIT_BUYER_PAY"  # TRADE_SUCCESS, TRADE_CLOSED
    paid_at: datetime | None = None


#: The sandbox merchant as Alipay knows it (name, merchant category code).
SECONDARY_MERCHANT_NAME = "minigate Sandbox"
SECONDARY_MERCHANT_INDUSTRY = "5399"


def md5_sign(params: dict[str, str], key: str) -> str:
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items())
                    if k not in ("sign", "sign_type") and v != "")
    return hashlib.md5((text + key).encode()).hexdigest()  # noqa: S324 - Alipay's MD5 rule


class AlipayCore:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.partner = "2088000000000000"
        self._key = secrets.token_hex(16)
        self.trades: dict[str, Trade] = {}
        self._by_out_no: dict[str, str] = {}

    def create_trade(
        self, *, out_trade_no: str, amount_minor: int, currency: str, total_fee: str,
        subject: str, merchant: str, owner: TradeOwner, record: Any = None,
        merchant_name: str = SECONDARY_MERCHANT_NAME, industry: str = SECONDARY_MERCHANT_INDUSTRY,
    ) -> dict[str, str]:
        """Create a trade and return its signed gateway data, in Alipay's field order (the
        fields of Latipay's ``/v2/minialipay`` example: ``body`` carries the industry code,
        ``supplier`` the merchant's name)."""
        trade = Trade("2026" + secrets.token_hex(12), out_trade_no, self.partner, amount_minor,
                      currency, total_fee, owner, record)
        self.trades[trade.trade_no] = trade
        self._by_out_no[out_trade_no] = trade.trade_no
        data = {
            "service": "create_forex_trade_wap", "partner": self.partner,
            "_input_charset": "UTF-8", "sign_type": "MD5", "sign": "",
            "notify_url": "https://sandbox.invalid/notify/alipay",
            "return_url": "https://sandbox.invalid/notify/sync/alipay",
            "subject": subject or "order", "body": industry,
            "out_trade_no": out_trade_no, "currency": currency, "total_fee": total_fee,
            "supplier": merchant_name, "secondary_merchant_id": merchant,
            "secondary_merchant_name": merchant_name, "secondary_merchant_industry": industry,
            "product_code": "NEW_WAP_OVERSEAS_SELLER", "app_pay": "Y",
        }
        data["sign"] = md5_sign(data, self._key)
        return data

    def trade_for(self, out_trade_no: str) -> Trade | None:
        trade_no = self._by_out_no.get(out_trade_no)
        return self.trades.get(trade_no) if trade_no else None

    def forget(self, out_trade_no: str) -> None:
        """Its owner forgot the payment (``retention``): so does Alipay."""
        trade_no = self._by_out_no.pop(out_trade_no, None)
        if trade_no is not None:
            self.trades.pop(trade_no, None)

    def close(self, out_trade_no: str) -> bool:
        trade = self.trade_for(out_trade_no)
        if trade is None or trade.status != "WAIT_BUYER_PAY":
            return False
        trade.status = "TRADE_CLOSED"
        return True

    async def trade_pay(self, order_str: str | None, trade_no: str | None,
                        outcome: str) -> dict[str, str]:
        """What ``my.tradePay`` does: 9000 paid, 6001 cancelled, 4000 failed."""
        trade = self._find(order_str, trade_no)
        if trade is None:
            return {"resultCode": "4000", "memo": "order not found or signature invalid"}
        if trade.status != "WAIT_BUYER_PAY":
            return {"resultCode": "4000", "memo": f"trade is {trade.status}"}
        if outcome == "cancel":
            return {"resultCode": "6001", "memo": "user cancelled"}
        if outcome == "fail":
            return {"resultCode": "4000", "memo": "payment failed"}
        trade.status, trade.paid_at = "TRADE_SUCCESS", self.clock.now()
        await trade.owner.trade_paid(trade)
        return {"resultCode": "9000", "memo": ""}

    def _find(self, order_str: str | None, trade_no: str | None) -> Trade | None:
        if trade_no:
            return self.trades.get(trade_no)
        if not order_str:
            return None
        params = dict(part.split("=", 1) for part in order_str.split("&") if "=" in part)
        trade = self.trade_for(params.get("out_trade_no", ""))
        if trade is None:
            return None
        expected = md5_sign(params, self._key)
        return trade if hmac.compare_digest(expected, params.get("sign", "")) else None
