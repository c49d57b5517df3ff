"""minigate.client (sync and async) against a real ``minigate serve``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError

from minigate.api.schemas import CreatedOrder, Order
from minigate.client import AsyncMinigate, Minigate, MinigateError
from tests.contract.server import API_KEY, Server, serve

ORDER = {"amount": "12.30", "currency": "NZD", "description": "Flat white", "channel": "wechat"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("client")) as srv:
        yield srv


class LoseFirstAnswer(httpx.BaseTransport):
    """Delivers every request, but answers the first order creation with a 503 as if the
    real answer were lost on the way back."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.keys: list[str] = []
        self.lost = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if request.url.path == "/v1/orders" and request.method == "POST":
            self.keys.append(request.headers["Idempotency-Key"])
            if not self.lost:
                self.lost = True
                response.read()
                return httpx.Response(503, json={"error": {
                    "type": "api_error", "code": "database_unavailable", "message": "lost"}})
        return response


def test_sync_client_round_trip_and_errors(server: Server) -> None:
    with Minigate(server.base, API_KEY, retries=0) as mg:
        order = mg.create_order(merchant_reference="cl-1", **ORDER)
        assert isinstance(order, CreatedOrder) and order.client_token.startswith("ct_")
        assert order.status == "created" and order.amount == "12.30"
        fetched = mg.get_order(order.id)
        assert isinstance(fetched, Order) and fetched.id == order.id
        assert fetched.timeline[0].type == "order.created"
        assert order.id in [o.id for o in mg.list_orders(limit=100).data]
        with pytest.raises(MinigateError) as refused:
            mg.create_refund(order.id, amount="1.00")
        assert (refused.value.status, refused.value.code) == (409, "order_not_refundable")
        assert mg.close_order(order.id).status == "closed"
        with pytest.raises(MinigateError) as missing:
            mg.get_order("ord_nope")
        assert (missing.value.status, missing.value.type, missing.value.code,
                missing.value.param) == (404, "invalid_request_error", "not_found", "id")
        with pytest.raises(MinigateError) as currency:
            mg.create_order(merchant_reference="cl-2", **{**ORDER, "currency": "AUD"})
        assert (currency.value.code, currency.value.param) == ("currency_not_supported",
                                                               "currency")
        with pytest.raises(ValidationError):  # the API's own model: refused before sending
            mg.create_order(merchant_reference="cl-3", **{**ORDER, "amount": 12.3})
    with Minigate(server.base, "sk_wrong") as mg, pytest.raises(MinigateError) as auth:
        mg.list_events()
    assert (auth.value.status, auth.value.type) == (401, "authentication_error")


def test_a_retry_reuses_the_idempotency_key_and_creates_once(server: Server) -> None:
    transport = LoseFirstAnswer()
    with Minigate(server.base, API_KEY, retries=2, transport=transport) as mg:
        order = mg.create_order(merchant_reference="cl-retry", **ORDER)
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
        again = mg.create_order(merchant_reference="cl-retry-2", **ORDER)
        assert transport.keys[2] != transport.keys[0]  # a new logical call: a new key
        same = [o for o in mg.list_orders(limit=100).data if o.merchant_reference == "cl-retry"]
        assert [o.id for o in same] == [order.id]  # the retry got the first answer
        assert again.id != order.id


async def test_async_client(server: Server) -> None:
    async with AsyncMinigate(server.base, API_KEY) as mg:
        order = await mg.create_order(merchant_reference="cl-async", idempotency_key="k-async",
                                      **ORDER)
        replay = await mg.create_order(merchant_reference="cl-async", idempotency_key="k-async",
                                       **ORDER)
        assert replay.id == order.id and replay.client_token == order.client_token
        with pytest.raises(MinigateError) as reused:
            await mg.create_order(merchant_reference="cl-other", idempotency_key="k-async",
                                  **ORDER)
        assert (reused.value.status, reused.value.code,
                reused.value.param) == (422, "idempotency_key_reused", "Idempotency-Key")
        assert (await mg.get_order(order.id)).merchant_reference == "cl-async"
        events = await mg.list_events(after=0)
        assert events.object == "list"
