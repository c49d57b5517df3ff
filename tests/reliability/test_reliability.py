"""What makes minigate trustworthy with money, proven on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select

from minigate.jobs import signing as webhook_signing
from minigate.providers.latipay import signing
from minigate.sandbox import credentials as cred
from minigate.service.orders import mark_closed
from minigate.service.payments import check_payment
from minigate.store import repo
from minigate.store.models import Event, Notification
from tests.reliability.conftest import WEBHOOK_SECRET, Rig


async def _pending(rig: Rig, amount: str = "12.30") -> tuple[dict, dict, str]:
    order = await rig.gw.create_order(amount=amount)
    pay = await rig.gw.pay(order)
    detail = await rig.gw.get_order(order["id"])
    return order, pay, detail["payments"][0]["provider_order_no"]


def _paid_form(reference: str, amount: str) -> bytes:
    sig = signing.result_signature(cred.LATIPAY_API_KEY, reference, "wechat", "paid", "NZD", amount)
    return urlencode({"merchant_reference": reference, "order_id": "1", "currency": "NZD",
                      "amount": amount, "payment_method": "wechat", "status": "paid",
                      "signature": sig}).encode()


async def _event_count(rig: Rig, order_id: str, type_: str) -> int:
    async with rig.gw.ctx.sessions() as session:
        stmt = select(func.count()).select_from(Event).where(Event.order_id == order_id,
                                                             Event.type == type_)
        return int((await session.execute(stmt)).scalar_one())


async def test_concurrent_notifications_pollers_and_status_pay_once(rig: Rig) -> None:
    order, pay, reference = await _pending(rig)
    rig.gw.world.notifier.options.blackhole = True
    await rig.gw.shopper_pays(pay)  # the provider now says paid when queried
    body = _paid_form(reference, "12.30")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with rig.gw.ctx.sessions() as session:
        payment = await repo.payment_for_order(session, order["id"])
    assert payment is not None
    notifications = [rig.gw.api.post("/v1/notify/latipay", content=body, headers=headers)
                     for _ in range(50)]
    pollers = [check_payment(rig.gw.ctx, payment.id) for _ in range(5)]
    status = rig.gw.api.get(f"/v1/client/orders/{order['id']}",
                            params={"client_token": order["client_token"]})
    results = await asyncio.gather(*notifications, *pollers, status)
    acks = results[:50]
    assert all(r.status_code == 200 and r.text == "sent" for r in acks)
    assert results[-1].status_code == 200 and results[-1].json()["status"] in ("pending", "paid")
    assert (await rig.gw.get_order(order["id"]))["status"] == "paid"
    assert await _event_count(rig, order["id"], "order.paid") == 1
    async with rig.gw.ctx.sessions() as session:
        outbox = select(func.count()).select_from(Event).where(Event.order_id == order["id"],
                                                               Event.deliver == 1)
        assert (await session.execute(outbox)).scalar_one() == 1
        records = select(func.count()).select_from(Notification).where(
            Notification.order_id == order["id"])
        assert (await session.execute(records)).scalar_one() == 1  # 49 were duplicates


async def test_lost_reply_then_retry_gives_one_provider_order(rig: Rig) -> None:
    order = await rig.gw.create_order()
    rig.faults.lose_reply["/sandbox/latipay/v2/miniapppay"] = 1
    code = await rig.gw.login_code()
    r = await rig.gw.api.post(f"/v1/client/orders/{order['id']}/pay",
                              json={"client_token": order["client_token"], "login_code": code})
    assert r.status_code == 502 and r.json()["error"]["code"] == "provider_timeout"
    assert (await rig.gw.get_order(order["id"]))["status"] == "unknown"
    first_try = await rig.gw.get_order(order["id"])
    number = first_try["payments"][0]["provider_order_no"]
    pay = await rig.gw.pay(order)  # the mini program retries
    again = await rig.gw.pay(order)
    assert pay == again
    assert (await rig.gw.get_order(order["id"]))["payments"][0]["provider_order_no"] == number
    sim_orders = [o for (_, ref), o in rig.gw.world.latipay.orders.items() if ref == number]
    assert len(sim_orders) == 1 and len(rig.gw.world.latipay.orders) == 1
    await rig.gw.shopper_pays(pay)
    await rig.gw.wait_status(order["id"], "paid")


async def test_concurrent_refunds_never_exceed_paid(rig: Rig) -> None:
    order, pay, _ = await _pending(rig, amount="10.00")
    await rig.gw.shopper_pays(pay)
    await rig.gw.wait_status(order["id"], "paid")
    calls = [rig.gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "3.00"},
                             headers=rig.gw.merchant()) for _ in range(8)]
    results = await asyncio.gather(*calls)
    ok = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code == 422]
    assert len(ok) == 3 and len(refused) == 5, [r.status_code for r in results]
    assert all(r.json()["error"]["code"] == "refund_exceeds_paid" for r in refused)
    final = await rig.gw.get_order(order["id"])
    assert final["amount_refunded"] == "9.00" and final["status"] == "partially_refunded"
    sim = next(iter(rig.gw.world.latipay.orders.values()))
    assert sim.refunded_minor == 900


async def test_blackholed_notification_settled_by_reconciler(rig: Rig) -> None:
    order, pay, _ = await _pending(rig)
    rig.gw.world.notifier.options.blackhole = True
    assert (await rig.gw.shopper_pays(pay))["errMsg"] == "requestPayment:ok"
    await rig.run_jobs()
    assert (await rig.gw.get_order(order["id"]))["status"] == "pending"  # not due yet
    await rig.run_jobs(seconds=61)
    final = await rig.gw.get_order(order["id"])
    assert final["status"] == "paid"
    assert await _event_count(rig, order["id"], "order.paid") == 1


async def test_payment_after_close_is_refunded_automatically(rig: Rig) -> None:
    order, pay, _ = await _pending(rig)
    rig.gw.world.notifier.options.blackhole = True
    await rig.gw.shopper_pays(pay)  # paid at the provider; minigate has not heard
    async with rig.gw.ctx.sessions() as session:
        row = await repo.get_order(session, order["id"])
    assert row is not None
    assert await mark_closed(rig.gw.ctx, row, "expired")  # closed locally in the same instant
    rig.gw.world.notifier.options.blackhole = False
    sim_order = next(iter(rig.gw.world.latipay.orders.values()))
    rig.gw.world.latipay.notify(sim_order)  # the provider's (late) notification arrives
    await rig.gw.wait_status(order["id"], "paid_after_close")
    await rig.run_jobs()
    final = await rig.gw.get_order(order["id"])
    assert final["status"] == "refunded" and final["amount_refunded"] == "12.30"
    types = [e["type"] for e in final["timeline"]]
    assert types.count("order.paid_after_close") == 1 and "order.paid" not in types
    assert sim_order.refunded_minor == 1230


async def test_crashed_worker_job_is_picked_up_again_once(rig: Rig) -> None:
    from minigate.store.models import Payment

    order, pay, _ = await _pending(rig)
    rig.gw.world.notifier.options.blackhole = True
    await rig.gw.shopper_pays(pay)
    rig.clock.advance(61)
    claimed = await rig.runner._claim(Payment, Payment.status.in_(["pending"]),
                                      Payment.next_check_at)
    assert claimed  # the first worker claimed the check ... and died before doing it
    assert await rig.run_jobs() == 0  # leased: a second worker does not take it yet
    assert (await rig.gw.get_order(order["id"]))["status"] == "pending"
    await rig.run_jobs(seconds=61)  # lease ran out
    assert (await rig.gw.get_order(order["id"]))["status"] == "paid"
    await rig.run_jobs(seconds=3600)
    assert await _event_count(rig, order["id"], "order.paid") == 1


async def test_webhooks_survive_hours_of_merchant_downtime(rig: Rig) -> None:
    rig.merchant.down = True
    orders = []
    for _ in range(2):
        order, pay, _ = await _pending(rig)
        await rig.gw.shopper_pays(pay)
        await rig.gw.wait_status(order["id"], "paid")
        orders.append(order)
    await rig.run_jobs()
    for _ in range(60):  # about six hours in compressed time
        await rig.run_jobs(seconds=360)
    assert rig.merchant.received == [] and rig.merchant.attempts >= 10
    rig.merchant.down = False
    for _ in range(5):
        await rig.run_jobs(seconds=3600)
    ids = [json.loads(body)["id"] for _, body in rig.merchant.received]
    assert len(ids) == len(set(ids)) == 2
    now = int(rig.clock.now().timestamp())
    for headers, body in rig.merchant.received:
        header = headers["minigate-signature"]
        assert webhook_signing.verify(header, body, WEBHOOK_SECRET, now, tolerance=10**6)
        assert json.loads(body)["type"] == "order.paid"
    listed = await rig.gw.api.get("/v1/events", headers=rig.gw.merchant())
    delivered = [e for e in listed.json()["data"] if e["type"] == "order.paid"]
    assert {e["delivery"]["status"] for e in delivered} == {"delivered"}


async def test_undeliverable_webhook_parks_then_redelivers(rig: Rig) -> None:
    rig.merchant.down = True
    order, pay, _ = await _pending(rig)
    await rig.gw.shopper_pays(pay)
    await rig.gw.wait_status(order["id"], "paid")
    await rig.run_jobs()
    for _ in range(30):
        await rig.run_jobs(seconds=3600)
    events = (await rig.gw.api.get("/v1/events", headers=rig.gw.merchant())).json()["data"]
    parked = [e for e in events if e["type"] == "order.paid"][0]
    assert parked["delivery"]["status"] == "parked"
    rig.merchant.down = False
    r = await rig.gw.api.post(f"/v1/events/{parked['id']}/redeliver", headers=rig.gw.merchant())
    assert r.status_code == 200
    await rig.run_jobs()
    assert [json.loads(b)["id"] for _, b in rig.merchant.received] == [parked["id"]]


async def test_hostile_notifications_send_nothing_to_the_merchant(rig: Rig) -> None:
    order, _, reference = await _pending(rig)
    forged = _paid_form(reference, "12.30").replace(b"signature=", b"signature=00")
    tampered = _paid_form(reference, "12.30").replace(b"amount=12.30", b"amount=1230.00")
    wrong_amount = _paid_form(reference, "0.01")
    acks = []
    for body in (forged, tampered, wrong_amount, b"\xff\xfe",
                 b"merchant_reference=" + reference.encode()):
        r = await rig.gw.api.post("/v1/notify/latipay", content=body)
        acks.append(r.text == "sent")
    assert acks == [False, False, True, False, False]  # only the signed one is recorded
    for _ in range(3):
        await rig.run_jobs(seconds=5)
    final = await rig.gw.get_order(order["id"])
    assert final["status"] == "pending" and final["flagged"] is True
    types = [e["type"] for e in final["timeline"]]
    assert types.count("security.notification_mismatch") == 1 and "order.paid" not in types
    async with rig.gw.ctx.sessions() as session:
        outbox = select(func.count()).select_from(Event).where(Event.order_id == order["id"],
                                                               Event.deliver == 1)
        assert (await session.execute(outbox)).scalar_one() == 0
    assert rig.merchant.received == [] and rig.merchant.attempts == 0


async def test_two_workers_claim_disjoint_work(rig: Rig) -> None:
    from minigate.jobs.runner import JobRunner
    from minigate.store.models import Payment

    rig.gw.world.notifier.options.blackhole = True
    for _ in range(6):
        _, pay, _ = await _pending(rig)
        await rig.gw.shopper_pays(pay)
    rig.clock.advance(61)
    other = JobRunner(rig.gw.ctx, rig.gw.runtime.http, worker_id="second")
    due = Payment.status.in_(["pending"])
    a, b = await asyncio.gather(rig.runner._claim(Payment, due, Payment.next_check_at),
                                other._claim(Payment, due, Payment.next_check_at))
    assert set(a).isdisjoint(b) and len(set(a) | set(b)) == 6


async def test_a_failed_refund_query_never_fails_the_refund(rig: Rig) -> None:
    from minigate.errors import ProviderError
    from minigate.service.refunds import submit_refund

    order, pay, _ = await _pending(rig, amount="10.00")
    await rig.gw.shopper_pays(pay)
    await rig.gw.wait_status(order["id"], "paid")
    client = rig.gw.ctx.providers["latipay"]
    original_refund = client.refund

    async def lost(_: object) -> None:
        from minigate.errors import ProviderTimeout
        raise ProviderTimeout("no answer", provider="latipay")

    async def unreadable(_: object) -> None:
        raise ProviderError("answer signature is wrong", provider="latipay")

    client.refund, client.query_refund = lost, unreadable
    try:
        r = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "4.00"},
                                  headers=rig.gw.merchant())
        assert r.json()["status"] == "unknown"
        view = await submit_refund(rig.gw.ctx, r.json()["id"], query=True)
        assert view["status"] == "unknown"  # not failed: the money may have moved
    finally:
        client.refund = original_refund
        del client.query_refund
    detail = await rig.gw.get_order(order["id"])
    assert detail["refunds"][0]["status"] == "unknown"
    again = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "7.00"},
                                  headers=rig.gw.merchant())
    assert again.status_code == 422  # the unknown 4.00 is still reserved


async def _paid_qfpay(rig: Rig, amount: str) -> dict[str, Any]:
    order = await rig.gw.create_order(provider="qfpay", currency="HKD", amount=amount)
    await rig.gw.shopper_pays(await rig.gw.pay(order))
    await rig.gw.wait_status(order["id"], "paid")
    return order


async def test_qfpay_refund_reply_lost_retry_reuses_its_out_trade_no(rig: Rig) -> None:
    order = await _paid_qfpay(rig, "40.00")
    # No refund notification either: only a query by the refund's number can settle it.
    await rig.gw.api.post("/sandbox/control/notifications", json={"blackhole": True})
    rig.faults.lose_reply["/sandbox/qfpay/trade/v1/refund"] = 1
    r = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "15.00"},
                              headers=rig.gw.merchant())
    assert r.status_code == 201 and r.json()["status"] == "unknown", r.text
    refunds = [t for t in rig.gw.world.qfpay.txns.values() if t.kind == "refund"]
    assert len(refunds) == 1  # it did arrive at QFPay; only the answer was lost
    number = refunds[0].out_trade_no
    await rig.run_jobs(3600)  # the reconciler asks QFPay about that refund number
    refund = (await rig.gw.api.get(f"/v1/refunds/{r.json()['id']}",
                                   headers=rig.gw.merchant())).json()
    assert refund["status"] == "succeeded"
    refunds = [t for t in rig.gw.world.qfpay.txns.values() if t.kind == "refund"]
    assert [t.out_trade_no for t in refunds] == [number]  # never a second refund
    payment = next(t for t in rig.gw.world.qfpay.txns.values() if t.kind == "payment")
    assert payment.refunded_minor == 1500
    # A second refund is a new refund: a new out_trade_no.
    second = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds",
                                   json={"amount": "5.00"}, headers=rig.gw.merchant())
    assert second.json()["status"] == "succeeded"
    numbers = {t.out_trade_no for t in rig.gw.world.qfpay.txns.values() if t.kind == "refund"}
    assert len(numbers) == 2 and number in numbers
    detail = await rig.gw.get_order(order["id"])
    assert detail["amount_refunded"] == "20.00"
    assert [e["type"] for e in detail["timeline"]].count("refund.succeeded") == 2


async def test_qfpay_refund_that_never_arrived_is_sent_again_with_the_same_number(
    rig: Rig,
) -> None:
    order = await _paid_qfpay(rig, "40.00")
    client = rig.gw.ctx.providers["qfpay"]
    original = client.refund
    sent: list[str] = []

    async def timed_out_before_sending(request: Any) -> Any:
        from minigate.errors import ProviderTimeout
        sent.append(request.provider_refund_no)
        raise ProviderTimeout("connect timeout", provider="qfpay")

    client.refund = timed_out_before_sending
    try:
        r = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds",
                                  json={"amount": "15.00"}, headers=rig.gw.merchant())
    finally:
        del client.refund
    assert r.json()["status"] == "unknown" and original is not None  # restored by del
    await rig.run_jobs(3600)  # query by number: not found, so the refund is sent again
    refunds = [t for t in rig.gw.world.qfpay.txns.values() if t.kind == "refund"]
    assert [t.out_trade_no for t in refunds] == sent
    refund = (await rig.gw.api.get(f"/v1/refunds/{r.json()['id']}",
                                   headers=rig.gw.merchant())).json()
    assert refund["status"] == "succeeded"


async def test_a_stale_refund_answer_never_reopens_a_settled_refund(rig: Rig) -> None:
    """The refund call's (lost) answer is applied from a row read before the provider's
    notification settled the refund: it must not move it back to unknown, or the next
    query would book the same refund twice."""
    from minigate.providers.base import ProviderRefundStatus, RefundState
    from minigate.service.refunds import settle_refund
    from minigate.store.db import make_engine, session_factory
    from minigate.store.models import Refund

    order = await _paid_qfpay(rig, "40.00")
    ctx = rig.gw.ctx
    client = ctx.providers["qfpay"]

    async def lost(_: object) -> None:
        from minigate.errors import ProviderTimeout
        raise ProviderTimeout("no answer", provider="qfpay")

    client.refund = lost
    try:
        r = await rig.gw.api.post(f"/v1/orders/{order['id']}/refunds",
                                  json={"amount": "15.00"}, headers=rig.gw.merchant())
    finally:
        del client.refund
    refund_id = r.json()["id"]
    assert r.json()["status"] == "unknown"
    # The notification is handled by another process (on SQLite one process has a single
    # connection, so two transactions can only overlap across processes).
    other_engine = make_engine(ctx.settings.database_url)
    other_process = session_factory(other_engine)
    async with ctx.sessions() as stale_session, stale_session.begin():
        stale = await stale_session.get(Refund, refund_id)
        assert stale is not None and stale.status == "unknown"
        async with other_process() as other, other.begin():  # the notification wins the race
            row = await other.get(Refund, refund_id)
            assert row is not None
            done = RefundState(row.provider_refund_no, ProviderRefundStatus.SUCCEEDED)
            assert await settle_refund(ctx, other, row, done, source="notification") == (
                "succeeded")
        pending = RefundState(stale.provider_refund_no, ProviderRefundStatus.PENDING)
        assert await settle_refund(ctx, stale_session, stale, pending, source="query") == "noop"
    await other_engine.dispose()
    await rig.run_jobs(3600)  # queries anything still open
    detail = await rig.gw.get_order(order["id"])
    assert detail["refunds"][0]["status"] == "succeeded"
    assert detail["amount_refunded"] == "15.00" and detail["status"] == "partially_refunded"
    assert [e["type"] for e in detail["timeline"]].count("refund.succeeded") == 1


async def test_unverifiable_notifications_bring_a_query_forward_at_most_once(rig: Rig) -> None:
    from minigate.service.notifications import HINT_INTERVAL

    order, _, reference = await _pending(rig)
    queries = "/sandbox/latipay/v2/transaction/"
    await rig.run_jobs(seconds=21)  # the scheduled first check
    assert rig.faults.count(queries) == 1
    forged = _paid_form(reference, "12.30").replace(b"signature=", b"signature=00")
    for _ in range(10):  # a flood of forged callbacks naming the order, all at once
        r = await rig.gw.api.post("/v1/notify/latipay", content=forged)
        assert r.status_code == 400
        await rig.run_jobs()
    assert rig.faults.count(queries) == 2  # one query brought forward, not ten
    await rig.run_jobs(seconds=HINT_INTERVAL.total_seconds() + 1)
    await rig.gw.api.post("/v1/notify/latipay", content=forged)
    await rig.run_jobs()
    assert rig.faults.count(queries) == 2  # the next scheduled check is due soon anyway
    await rig.run_jobs(seconds=30)
    assert rig.faults.count(queries) == 3  # ... and here it is
    for _ in range(3):
        await rig.gw.api.post("/v1/notify/latipay", content=forged)
        await rig.run_jobs()
    assert rig.faults.count(queries) == 4  # one more, a hint interval after the last one
    detail = await rig.gw.get_order(order["id"])
    assert detail["status"] == "pending"
    assert [e["type"] for e in detail["timeline"]].count("security.notification_unverified") == 2


async def test_webhook_host_resolving_inside_is_never_posted(rig: Rig) -> None:
    async def metadata(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]  # e.g. DNS for merchant.test now points at the cloud's insides

    rig.runner.resolver = metadata
    order, pay, _ = await _pending(rig)
    await rig.gw.shopper_pays(pay)
    await rig.gw.wait_status(order["id"], "paid")
    await rig.run_jobs()
    await rig.run_jobs(seconds=120)
    assert rig.merchant.attempts == 0  # no connection was made at all
    events = (await rig.gw.api.get("/v1/events", headers=rig.gw.merchant())).json()["data"]
    paid = [e for e in events if e["type"] == "order.paid"]
    assert len(paid) == 1 and paid[0]["delivery"]["status"] == "pending"
    assert paid[0]["delivery"]["attempts"] == 2
    assert "non-public" in paid[0]["delivery"]["last_error"]


async def test_webhook_goes_to_the_address_that_was_checked(rig: Rig) -> None:
    """No second DNS lookup between the check and the connection (DNS rebinding): the
    request is sent to the checked address, under the merchant's host name, and a refused
    address is followed by the next one."""
    seen: list[str] = []
    inner = rig.gw.network.routes["merchant.test"]

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.host)
            if request.url.host == "93.184.216.35":
                raise httpx.ConnectError("refused", request=request)
            assert request.headers["host"] == "merchant.test"
            assert request.extensions["sni_hostname"] == "merchant.test"
            return await inner.handle_async_request(request)

    async def two_addresses(host: str, port: int) -> list[str]:
        return ["93.184.216.35", "93.184.216.34"]

    rig.gw.network.routes["merchant.test"] = Recording()
    rig.runner.resolver = two_addresses
    order, pay, _ = await _pending(rig)
    await rig.gw.shopper_pays(pay)
    await rig.gw.wait_status(order["id"], "paid")
    await rig.run_jobs()
    assert seen == ["93.184.216.35", "93.184.216.34"]
    assert len(rig.merchant.received) == 1
