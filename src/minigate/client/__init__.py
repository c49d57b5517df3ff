"""A typed Python client for minigate's merchant API, sync and async, on httpx.

Its models are the API's own (:mod:`minigate.api.schemas`, the ones ``/openapi.json`` is
built from). Creating an order or a refund sends an ``Idempotency-Key`` (a fresh UUID per
call unless you give one), and a retry after a network error, a 409 "still in flight" or a
5xx reuses that key, so a retried call never creates twice. Errors carry the error
shape's ``type``, ``code`` and ``param``::

    from minigate.client import Minigate, MinigateError

    with Minigate("http://127.0.0.1:8000", api_key="sk_test_…") as mg:
        order = mg.create_order(merchant_reference="cart-81", amount="12.30",
                                currency="NZD", description="Flat white", channel="wechat")
        try:
            mg.create_refund(order.id, amount="5.00")
        except MinigateError as exc:
            print(exc.status, exc.code, exc.param)   # 409 order_not_refundable None
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from minigate.api.schemas import (
    Channel,
    ClientOrderStatus,
    CreatedOrder,
    CreateOrder,
    CreateRefund,
    Event,
    EventList,
    Order,
    OrderList,
    PayParams,
    Refund,
)

__all__ = ["Minigate", "AsyncMinigate", "MinigateError", "Channel", "CreatedOrder", "Order",
           "OrderList",
           "Refund", "Event", "EventList", "PayParams", "ClientOrderStatus"]

M = TypeVar("M", bound=BaseModel)

#: Statuses worth another try with the same Idempotency-Key: still in flight (409
#: idempotency_key_in_use), rate limited, and the server or provider failing.
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


class MinigateError(Exception):
    """An answer in minigate's error shape (or a transport failure: ``status`` 0)."""

    def __init__(self, status: int, type_: str, code: str, message: str,
                 param: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.param = param

    @classmethod
    def from_response(cls, response: httpx.Response) -> MinigateError:
        try:
            error = response.json()["error"]
            return cls(response.status_code, str(error["type"]), str(error["code"]),
                       str(error["message"]), error.get("param"))
        except (ValueError, KeyError, TypeError):
            return cls(response.status_code, "api_error", "http_error",
                       response.text[:200] or response.reason_phrase)


def _retryable(response: httpx.Response) -> bool:
    if response.status_code != 409:
        return response.status_code in RETRY_STATUSES
    try:
        return bool(response.json()["error"]["code"] == "idempotency_key_in_use")
    except (ValueError, KeyError, TypeError):
        return False


def _delay(attempt: int, response: httpx.Response | None) -> float:
    after = response.headers.get("retry-after") if response is not None else None
    if after is not None and after.isdigit():
        return min(float(after), 10.0)
    return float(min(0.25 * 2**attempt, 4.0))


def _order_body(args: Mapping[str, Any]) -> dict[str, Any]:
    """The create-order body from a method's arguments, validated with the API's own model
    (a malformed call fails here, before it is sent)."""
    fields = {k: v for k, v in args.items()
              if k in CreateOrder.model_fields and v is not None}
    return CreateOrder.model_validate(fields).model_dump(mode="json", exclude_none=True)


def _given(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _refund_body(amount: str | None, reason: str) -> dict[str, Any]:
    return CreateRefund(amount=amount, reason=reason).model_dump(mode="json", exclude_none=True)


class _Base:
    def __init__(self, api_key: str, retries: int) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "minigate-client"}
        self.retries = retries

    def _wait(self, attempt: int, response: httpx.Response | None,
              error: httpx.TransportError | None) -> float | None:
        """Seconds to wait before trying again, or None when ``response`` is the answer;
        a network error with no tries left is raised."""
        if attempt < self.retries and (response is None or _retryable(response)):
            return _delay(attempt, response)
        if error is not None:
            raise MinigateError(0, "api_error", "network_error", str(error)) from error
        return None

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        if response.is_success:
            return model.model_validate(response.json())
        raise MinigateError.from_response(response)


class Minigate(_Base):
    """Synchronous client. ``retries``: extra attempts for retryable failures."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 15.0, retries: int = 2,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(api_key, retries)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport,
                                  headers=self._headers)

    def __enter__(self) -> Minigate:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, *, json: Any = None,
              params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send; retry what may be retried (every call here is safe to repeat: reads, and
        writes under an Idempotency-Key or idempotent by design)."""
        for attempt in itertools.count():
            response, error = None, None
            try:
                response = self._http.request(method, path, json=json, params=params,
                                              headers=headers)
            except httpx.TransportError as exc:
                error = exc
            wait = self._wait(attempt, response, error)
            if wait is None:
                break
            time.sleep(wait)
        assert response is not None
        return response

    def create_order(self, *, merchant_reference: str, amount: str, currency: str,
                     description: str, channel: Channel | str, provider: str | None = None,
                     expires_in: int | None = None, metadata: dict[str, Any] | None = None,
                     idempotency_key: str | None = None) -> CreatedOrder:
        """``POST /v1/orders`` (fields as :class:`~minigate.api.schemas.CreateOrder`)."""
        body = _order_body(locals())
        key = idempotency_key or str(uuid.uuid4())
        return self._parse(CreatedOrder, self._send(
            "POST", "/v1/orders", json=body, headers={"Idempotency-Key": key}))

    def get_order(self, order_id: str) -> Order:
        return self._parse(Order, self._send("GET", f"/v1/orders/{order_id}"))

    def list_orders(self, *, status: str | None = None, provider: str | None = None,
                    limit: int = 20, cursor: str | None = None) -> OrderList:
        params = _given(status=status, provider=provider, limit=limit, cursor=cursor)
        return self._parse(OrderList, self._send("GET", "/v1/orders", params=params))

    def close_order(self, order_id: str) -> Order:
        return self._parse(Order, self._send("POST", f"/v1/orders/{order_id}/close"))

    def create_refund(self, order_id: str, *, amount: str | None = None, reason: str = "",
                      idempotency_key: str | None = None) -> Refund:
        key = idempotency_key or str(uuid.uuid4())
        return self._parse(Refund, self._send(
            "POST", f"/v1/orders/{order_id}/refunds", json=_refund_body(amount, reason),
            headers={"Idempotency-Key": key}))

    def get_refund(self, refund_id: str) -> Refund:
        return self._parse(Refund, self._send("GET", f"/v1/refunds/{refund_id}"))

    def list_events(self, *, after: int | None = None, limit: int = 50) -> EventList:
        params = _given(limit=limit, after=after)
        return self._parse(EventList, self._send("GET", "/v1/events", params=params))

    def redeliver_event(self, event_id: str) -> Event:
        return self._parse(Event, self._send("POST", f"/v1/events/{event_id}/redeliver"))


class AsyncMinigate(_Base):
    """The same client for asyncio."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 15.0, retries: int = 2,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(api_key, retries)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                       transport=transport, headers=self._headers)

    async def __aenter__(self) -> AsyncMinigate:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, *, json: Any = None,
                    params: Mapping[str, Any] | None = None,
                    headers: Mapping[str, str] | None = None) -> httpx.Response:
        for attempt in itertools.count():
            response, error = None, None
            try:
                response = await self._http.request(method, path, json=json, params=params,
                                                    headers=headers)
            except httpx.TransportError as exc:
                error = exc
            wait = self._wait(attempt, response, error)
            if wait is None:
                break
            await asyncio.sleep(wait)
        assert response is not None
        return response

    async def create_order(self, *, merchant_reference: str, amount: str, currency: str,
                           description: str, channel: Channel | str, provider: str | None = None,
                           expires_in: int | None = None, metadata: dict[str, Any] | None = None,
                           idempotency_key: str | None = None) -> CreatedOrder:
        body = _order_body(locals())
        key = idempotency_key or str(uuid.uuid4())
        return self._parse(CreatedOrder, await self._send(
            "POST", "/v1/orders", json=body, headers={"Idempotency-Key": key}))

    async def get_order(self, order_id: str) -> Order:
        return self._parse(Order, await self._send("GET", f"/v1/orders/{order_id}"))

    async def list_orders(self, *, status: str | None = None, provider: str | None = None,
                          limit: int = 20, cursor: str | None = None) -> OrderList:
        params = _given(status=status, provider=provider, limit=limit, cursor=cursor)
        return self._parse(OrderList, await self._send("GET", "/v1/orders", params=params))

    async def close_order(self, order_id: str) -> Order:
        return self._parse(Order, await self._send("POST", f"/v1/orders/{order_id}/close"))

    async def create_refund(self, order_id: str, *, amount: str | None = None, reason: str = "",
                            idempotency_key: str | None = None) -> Refund:
        key = idempotency_key or str(uuid.uuid4())
        return self._parse(Refund, await self._send(
            "POST", f"/v1/orders/{order_id}/refunds", json=_refund_body(amount, reason),
            headers={"Idempotency-Key": key}))

    async def get_refund(self, refund_id: str) -> Refund:
        return self._parse(Refund, await self._send("GET", f"/v1/refunds/{refund_id}"))

    async def list_events(self, *, after: int | None = None, limit: int = 50) -> EventList:
        params = _given(limit=limit, after=after)
        return self._parse(EventList, await self._send("GET", "/v1/events", params=params))

    async def redeliver_event(self, event_id: str) -> Event:
        return self._parse(Event, await self._send("POST", f"/v1/events/{event_id}/redeliver"))
