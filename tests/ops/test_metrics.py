"""/metrics after a payment and a refund: every listed series moved; access rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from minigate.observability.metrics import rejection_kind
from tests.ops.live import live_app
from tests.reliability.conftest import make_rig


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_payment_and_a_refund_move_every_series(sqlite_url: str) -> None:
    rig = await make_rig(sqlite_url)
    gw = rig.gw
    try:
        before = _samples((await gw.api.get("/metrics")).text)
        order = await gw.create_order(amount="10.00")
        await gw.shopper_pays(await gw.pay(order))
        await gw.wait_status(order["id"], "paid")
        refund = await gw.api.post(f"/v1/orders/{order['id']}/refunds",
                                   json={"amount": "4.00"}, headers=gw.merchant())
        assert refund.status_code == 201, refund.text
        # A forged notification: a verification failure, counted by reason.
        forged = await gw.api.post("/v1/notify/latipay",
                                   content=b"merchant_reference=x&status=paid&signature=y")
        assert forged.status_code >= 400
        # An unpaid order keeps a payment open (pending) for the gauges.
        waiting = await gw.create_order(amount="2.00")
        await gw.pay(waiting)
        await rig.run_jobs(seconds=120)  # deliver webhooks, settle the refund
        response = await gw.api.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        after = _samples(response.text)
    finally:
        await gw.api.aclose()
        await gw.runtime.stop()

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("minigate_notifications_total", provider="latipay", outcome="paid") >= 1
    assert moved("minigate_notification_rejections_total", provider="latipay",
                 reason="bad_signature") == 1
    assert moved("minigate_notification_seconds_count", provider="latipay") >= 2
    assert moved("minigate_provider_calls_total", provider="latipay",
                 operation="create_payment", outcome="ok") == 2
    assert moved("minigate_provider_calls_total", provider="latipay", operation="refund",
                 outcome="ok") == 1
    assert moved("minigate_provider_call_seconds_count", provider="latipay",
                 operation="create_payment") == 2
    assert moved("minigate_order_transitions_total", to_status="paid") == 1
    assert moved("minigate_order_transitions_total", to_status="partially_refunded") == 1
    assert moved("minigate_refunds_total", outcome="requested") == 1
    assert moved("minigate_refunds_total", outcome="succeeded") == 1
    assert moved("minigate_webhook_deliveries_total", outcome="delivered") >= 2
    assert moved("minigate_job_passes_total") >= 1
    assert _value(after, "minigate_job_last_pass_timestamp_seconds") > 0
    assert _value(after, "minigate_database_up") == 1
    assert _value(after, "minigate_schema_at_head") == 1
    assert _value(after, "minigate_outbox_pending") == 0
    assert _value(after, "minigate_outbox_lag_seconds") == 0
    assert _value(after, "minigate_payments_open", status="pending") == 1
    assert _value(after, "minigate_payment_oldest_open_age_seconds", status="pending") >= 120
    assert ("minigate_build_info", frozenset({("mode", "sandbox"),
                                             ("version", "0.1.0")})) in after


async def test_outbox_lag_and_pending_events_while_the_merchant_is_down(
        sqlite_url: str) -> None:
    rig = await make_rig(sqlite_url)
    gw = rig.gw
    try:
        rig.merchant.down = True
        order = await gw.create_order(amount="3.00")
        await gw.shopper_pays(await gw.pay(order))
        await gw.wait_status(order["id"], "paid")
        await rig.run_jobs(seconds=90)  # one failed attempt, then 90 s of waiting
        after = _samples((await gw.api.get("/metrics")).text)
    finally:
        await gw.api.aclose()
        await gw.runtime.stop()
    assert _value(after, "minigate_outbox_pending") == 1
    assert _value(after, "minigate_outbox_lag_seconds") >= 90
    assert _value(after, "minigate_webhook_deliveries_total", outcome="failed") >= 1


async def test_metrics_need_the_token_in_live_mode(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    for token, header, expected in ((None, "", 403), ("mt_secret_1", "", 401),
                                    ("mt_secret_1", "Bearer wrong", 401),
                                    ("mt_secret_1", "Bearer mt_secret_1", 200)):
        async with live_app(url, metrics_token=token) as (_, http):
            r = await http.get("/metrics", headers={"Authorization": header} if header else {})
            assert r.status_code == expected, (token, header, r.text)
            if expected == 200:
                assert "minigate_database_up 1.0" in r.text


@pytest.mark.parametrize(("reason", "kind"), [
    ("signature mismatch", "bad_signature"), ("X-QF-SIGN does not match the body", "bad_signature"),
    ("x-timestamp outside the accepted window", "bad_timestamp"),
    ("body is not JSON", "malformed"), ("merchant_reference and status are required",
                                        "missing_field"),
    ("cannot refresh platform certificates: x", "certificates_unavailable"),
    ("req_info does not decrypt with the APIv2 key", "does_not_decrypt"),
])
def test_rejection_reasons_are_a_few_kinds(reason: str, kind: str) -> None:
    assert rejection_kind(reason) == kind
