"""The whole life of a mini-program payment with Latipay, through the HTTP API."""

from __future__ import annotations

import pytest

from tests.support import Harness


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
async def test_order_pay_notify_refund(gateway: Harness, channel: str) -> None:
    order = await gateway.create_order(channel=channel, amount="12.30")
    assert order["status"] == "created" and order["amount"] == "12.30"
    pay = await gateway.pay(order)
    assert pay["provider"] == "latipay" and pay["channel"] == channel
    if channel == "wechat":
        assert set(pay["wechat"]) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert pay["wechat"]["package"].startswith("prepay_id=")
    else:
        assert "out_trade_no=" in pay["alipay"]["orderStr"]
    # Paying again returns the same prepay, never a second provider order.
    assert await gateway.pay(order) == pay

    result = await gateway.shopper_pays(pay)
    assert result in ({"errMsg": "requestPayment:ok"}, {"resultCode": "9000", "memo": ""})
    paid = await gateway.wait_status(order["id"], "paid")
    assert paid["paid"] is True
    assert [e["type"] for e in paid["timeline"]].count("order.paid") == 1

    r = await gateway.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "5.00"},
                               headers=gateway.merchant())
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "succeeded" and r.json()["amount"] == "5.00"
    final = await gateway.get_order(order["id"])
    assert final["status"] == "partially_refunded"
    assert final["amount_refunded"] == "5.00"
    status = await gateway.api.get(f"/v1/client/orders/{order['id']}",
                                   params={"client_token": order["client_token"]})
    assert status.json() == {"id": order["id"], "status": "partially_refunded", "paid": True}
