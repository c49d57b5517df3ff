"""The CBTIS client's access token: fetched once, refreshed before expiry and on a 401."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from minigate.clock import FrozenClock
from minigate.domain.money import Money
from minigate.jobs.runner import JobRunner
from minigate.providers.base import PaymentRef, ProviderPaymentStatus
from minigate.providers.cbtis.assumptions import TOKEN_REFRESH_MARGIN
from tests.support import Harness, harness_settings, start_harness


@pytest.fixture
async def frozen(sqlite_url: str) -> AsyncIterator[tuple[Harness, FrozenClock]]:
    clock = FrozenClock()
    h = await start_harness(harness_settings(sqlite_url), clock=clock)
    try:
        yield h, clock
    finally:
        await h.api.aclose()
        await h.runtime.stop()


async def test_token_expires_mid_flow_and_is_refreshed(
    frozen: tuple[Harness, FrozenClock],
) -> None:
    h, clock = frozen
    sim = h.world.cbtis
    sim.token_ttl = timedelta(minutes=3)
    order = await h.create_order(provider="cbtis", currency="HKD", amount="10.00")
    pay = await h.pay(order)
    assert sim.logins == 1
    assert (await h.shopper_pays(pay)) == {"errMsg": "requestPayment:ok"}

    # Past expiry (minus the margin): the client logs in again *before* calling.
    clock.advance((sim.token_ttl - TOKEN_REFRESH_MARGIN).total_seconds() + 1)
    await JobRunner(h.ctx, h.runtime.http).run_once()
    assert (await h.get_order(order["id"]))["status"] == "paid"
    assert sim.logins == 2 and sim.unauthorised == 0


async def test_401_gets_a_fresh_token_and_one_retry(
    frozen: tuple[Harness, FrozenClock],
) -> None:
    h, _ = frozen
    sim = h.world.cbtis
    order = await h.create_order(provider="cbtis", currency="HKD", amount="10.00")
    await h.pay(order)
    intent = next(iter(sim.intents.values()))
    sim.revoke_tokens()  # the token the client holds is now refused
    client = h.ctx.provider("cbtis")
    ref = PaymentRef(intent.merchant_order_id, Money(1000, "HKD"), intent.created_at)
    state = await client.query_payment(ref)
    assert state.status is ProviderPaymentStatus.PENDING
    assert sim.unauthorised == 1 and sim.logins == 2
    # The fresh token is cached: the next call needs no login.
    await client.query_payment(ref)
    assert sim.logins == 2 and sim.unauthorised == 1


async def test_bad_credentials_are_a_clear_error(frozen: tuple[Harness, FrozenClock]) -> None:
    from minigate.errors import ProviderError

    h, _ = frozen
    h.world.cbtis.merchants["cbtis-sandbox-client"].api_key = "rotated"
    client = h.ctx.provider("cbtis")
    with pytest.raises(ProviderError) as err:
        await client.query_payment(PaymentRef("MGx", Money(1000, "HKD"), h.ctx.clock.now()))
    assert err.value.code == "provider_auth_failed"
