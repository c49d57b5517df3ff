"""Hostile WeChat Pay v3 notifications through the real intake, on SQLite and PostgreSQL.

WeChat v3 is the provider that signs a timestamp, so it is where stale and replayed
callbacks can be told apart from fresh ones. Every message below is built with the
simulator's real platform key and APIv3 key (what an attacker would need to steal) unless
the case is about lacking them.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from minigate.providers.wechatpay import v3sign
from minigate.sandbox import credentials as cred
from minigate.store.models import Event
from tests.reliability.conftest import Rig


def _envelope(resource: dict[str, Any]) -> bytes:
    nonce = secrets.token_hex(6)
    return json.dumps({
        "id": "EV-" + secrets.token_hex(10), "create_time": "2026-01-01T10:00:00+08:00",
        "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
        "summary": "ok",
        "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                     "associated_data": "transaction", "nonce": nonce,
                     "ciphertext": v3sign.aes_gcm_encrypt(
                         cred.WECHATPAY_APIV3_KEY, nonce, "transaction",
                         json.dumps(resource).encode())},
    }).encode()


def _paid_resource(out_trade_no: str, total: int, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "appid": cred.MINI_APP_ID, "mchid": cred.WECHATPAY_MCHID, "out_trade_no": out_trade_no,
        "transaction_id": "4200000000" + secrets.token_hex(5), "trade_type": "JSAPI",
        "trade_state": "SUCCESS", "trade_state_desc": "ok", "bank_type": "OTHERS",
        "success_time": "2026-01-01T10:00:00+08:00", "payer": {"openid": "o-attacker"},
        "amount": {"total": total, "payer_total": total, "currency": "CNY",
                   "payer_currency": "CNY"},
    }
    resource.update(changes)
    return resource


async def _post(rig: Rig, body: bytes, headers: dict[str, str]) -> Any:
    return await rig.gw.api.post("/v1/notify/wechatpay", content=body,
                                 headers={"Content-Type": "application/json", **headers})


async def _pending_wechat_order(rig: Rig) -> tuple[dict[str, Any], dict[str, Any], str]:
    order = await rig.gw.create_order(provider="wechatpay", currency="CNY", amount="88.80")
    pay = await rig.gw.pay(order)
    number = (await rig.gw.get_order(order["id"]))["payments"][0]["provider_order_no"]
    return order, pay, number


async def _outbox(rig: Rig, order_id: str) -> int:
    async with rig.gw.ctx.sessions() as session:
        stmt = select(func.count()).select_from(Event).where(Event.order_id == order_id,
                                                             Event.deliver == 1)
        return int((await session.execute(stmt)).scalar_one())


async def test_hostile_wechat_v3_notifications_move_nothing_and_send_nothing(rig: Rig) -> None:
    sim = rig.gw.world.wechatpay
    target, _, number = await _pending_wechat_order(rig)
    genuine = _envelope(_paid_resource(number, 8880))
    refused: list[Any] = []

    # Forged: signed with a key that is not WeChat's (under WeChat's serial).
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_headers = sim.signed_headers(genuine)
    forged_headers["Wechatpay-Signature"] = v3sign.rsa_sign(stranger, v3sign.response_message(
        forged_headers["Wechatpay-Timestamp"], forged_headers["Wechatpay-Nonce"], genuine))
    refused.append(await _post(rig, genuine, forged_headers))
    # Tampered: WeChat's signature over one body, sent with another.
    other = _envelope(_paid_resource(number, 8880, payer={"openid": "o-someone-else"}))
    refused.append(await _post(rig, other, sim.signed_headers(genuine)))
    # A signature probe.
    probe = sim.signed_headers(genuine)
    probe["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + probe["Wechatpay-Signature"]
    refused.append(await _post(rig, genuine, probe))
    # Stale: a genuinely signed message held back past the 5-minute window.
    held_back = sim.signed_headers(genuine)
    rig.clock.advance(v3sign.MAX_SKEW + 1)
    refused.append(await _post(rig, genuine, held_back))
    assert [r.status_code for r in refused] == [400, 400, 400, 400], [r.text for r in refused]

    # Signed by WeChat's key, but not what the order says: flagged, never paid.
    for resource in (_paid_resource(number, 1),
                     _paid_resource(number, 8880, mchid="1900000001"),
                     _paid_resource(number, 8880, amount={"total": 8880, "currency": "USD"})):
        body = _envelope(resource)
        r = await _post(rig, body, sim.signed_headers(body))
        assert r.status_code in (200, 204), r.text
    for _ in range(3):
        await rig.run_jobs(seconds=61)  # the scheduled queries: WeChat says NOTPAY

    detail = await rig.gw.get_order(target["id"])
    types = [e["type"] for e in detail["timeline"]]
    assert detail["status"] == "pending" and detail["paid"] is False
    assert detail["flagged"] is True
    assert types.count("security.notification_mismatch") == 3
    assert "order.paid" not in types and "order.paid_after_close" not in types
    assert await _outbox(rig, target["id"]) == 0
    assert rig.merchant.attempts == 0 and rig.merchant.received == []


async def test_replayed_wechat_v3_notification_is_a_no_op(rig: Rig) -> None:
    sim = rig.gw.world.wechatpay
    order, _, number = await _pending_wechat_order(rig)
    body = _envelope(_paid_resource(number, 8880))
    headers = sim.signed_headers(body)
    first = await _post(rig, body, headers)
    assert first.status_code == 204, first.text
    replay = await _post(rig, body, headers)  # the same bytes again, inside the window
    assert replay.status_code == 204  # acked, so WeChat stops, and nothing else happens
    rig.clock.advance(v3sign.MAX_SKEW + 1)
    late = await _post(rig, body, headers)  # the same bytes again, outside the window
    assert late.status_code == 400
    await rig.run_jobs()
    await rig.run_jobs(seconds=3600)
    detail = await rig.gw.get_order(order["id"])
    assert detail["status"] == "paid"
    assert [e["type"] for e in detail["timeline"]].count("order.paid") == 1
    assert await _outbox(rig, order["id"]) == 1
    ids = [json.loads(b)["id"] for _, b in rig.merchant.received]
    assert len(ids) == 1
