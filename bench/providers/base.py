"""What the benchmark needs to know about one provider (:class:`ProviderBench`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Notification:
    headers: dict[str, str]
    body: bytes


#: bare baseline, checkout: (http client, simulator base URL, openid, amount in minor units)
#: → ``{"number": …, "payment": <wx.requestPayment params>}``.
BareCreate = Callable[[httpx.AsyncClient, str, str, int], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ProviderBench:
    name: str
    channel: str
    currency: str
    amount: str  # decimal string, as the merchant API takes it
    amount_minor: int
    #: provider_order_no of the i-th seeded pending order (what the provider echoes back).
    seed_number: Callable[[int], str]
    #: the provider's success ack: (HTTP status, body, content type); the baseline sends it.
    ack: tuple[int, bytes, str]
    #: bare baseline: the provider call of a checkout (sign, POST to the simulator, verify).
    bare_create: BareCreate
    #: what the checkout's crypto floor covers, in words (printed in the report).
    floor_checkout: str
    #: the signatures minigate itself computes or checks per checkout (the crypto floor);
    #: None when it has none (CBTIS: bearer token).
    crypto_checkout: Callable[[], object] | None = None
    #: the in-process simulator's own signatures per checkout (sandbox only, same process).
    crypto_checkout_sim: Callable[[], object] | None = None
    #: a correctly signed "paid" notification for a seeded pending order; None when the
    #: provider's notification cannot settle an order by itself (see ``no_notification``).
    notification: Callable[[str], Notification] | None = None
    #: bare baseline: verify the notification; returns the event key or None (rejected).
    bare_verify: Callable[[Mapping[str, str], bytes], str | None] | None = None
    crypto_notification: Callable[[], object] | None = None
    floor_notification: str = ""
    #: why the notification operation is not applicable (when ``notification`` is None).
    no_notification: str = ""
    #: other statuses that also count as the success ack (WeChat Pay v3: 200 or 204).
    ack_statuses: tuple[int, ...] = ()

    @property
    def notifies(self) -> bool:
        return self.notification is not None

    def acked(self, status: int, body: bytes) -> bool:
        """Is this HTTP answer the provider's success ack?"""
        want_status, want_body, _ = self.ack
        if status != want_status and status not in self.ack_statuses:
            return False
        return body.strip() == want_body.strip() or (status == 204 and not body)


def seed_number(i: int) -> str:
    """28 characters, like minigate.domain.ids.provider_number(): fits every provider's
    order-number rules (WeChat 6–32 of [0-9A-Za-z_-|*], CBTIS ≤ 32)."""
    return f"MGBENCH{i:021d}"


def bench_number(prefix: str = "MGB") -> str:
    """A fresh provider order number for a baseline checkout (27 characters)."""
    import secrets

    return prefix + secrets.token_hex(12)


def psp_pay_sign() -> object:
    """What a PSP simulator (Latipay, QFPay, CBTIS) signs per checkout: the v2-style MD5
    ``paySign`` of the WeChat prepay it resells."""
    from minigate.providers.wechatpay import v2sign

    params = v2sign.pay_sign_params("wx5a7dbe0000sandbox", "1700000000", "n" * 32,
                                    "prepay_id=wx" + "0" * 30, v2sign.MD5)
    return v2sign.sign(params, "k" * 32)
