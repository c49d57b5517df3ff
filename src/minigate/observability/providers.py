"""Provider calls, counted and timed at the one seam every use case goes through.

:class:`InstrumentedProvider` wraps a connector: each of the five operations the service
layer calls (``create_payment``, ``query_payment``, ``close_payment``, ``refund``,
``query_refund``) is timed into ``minigate_provider_call_seconds`` and counted into
``minigate_provider_calls_total`` with its outcome:

* ``ok`` — the provider answered (whatever it said about the payment);
* ``unavailable`` — the request never left (safe to retry);
* ``timeout`` — it may have arrived: the outcome is unknown;
* ``error`` — the provider refused or answered something we could not use.

Everything else (attributes such as ``channels``, ``identity``, ``currencies``,
notification verification and acks) is the wrapped connector's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from minigate.errors import ProviderTimeout, ProviderUnavailable
from minigate.observability.metrics import PROVIDER_CALL_SECONDS, PROVIDER_CALLS
from minigate.providers.base import (
    CreatedPayment,
    PaymentRef,
    PaymentRequest,
    PaymentState,
    ProviderClient,
    RefundRequest,
    RefundState,
)

log = logging.getLogger("minigate.providers")

T = TypeVar("T")


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, ProviderUnavailable):
        return "unavailable"
    if isinstance(exc, ProviderTimeout):
        return "timeout"
    return "error"


class InstrumentedProvider:
    """A :class:`ProviderClient` that counts and times the wrapped one's calls."""

    def __init__(self, inner: ProviderClient) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            return await call()
        except Exception as exc:
            failure = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            outcome = outcome_of(failure)
            PROVIDER_CALLS.labels(self.name, operation, outcome).inc()
            PROVIDER_CALL_SECONDS.labels(self.name, operation).observe(elapsed)
            log.log(logging.DEBUG if outcome == "ok" else logging.INFO,
                    "%s %s: %s in %.0f ms", self.name, operation, outcome, elapsed * 1000)

    async def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        return await self._timed("create_payment", lambda: self.inner.create_payment(request))

    async def query_payment(self, ref: PaymentRef) -> PaymentState:
        return await self._timed("query_payment", lambda: self.inner.query_payment(ref))

    async def close_payment(self, ref: PaymentRef) -> None:
        await self._timed("close_payment", lambda: self.inner.close_payment(ref))

    async def refund(self, request: RefundRequest) -> RefundState:
        return await self._timed("refund", lambda: self.inner.refund(request))

    async def query_refund(self, request: RefundRequest) -> RefundState:
        return await self._timed("query_refund", lambda: self.inner.query_refund(request))


def instrumented(providers: dict[str, ProviderClient]) -> dict[str, ProviderClient]:
    return {name: InstrumentedProvider(client)
            for name, client in providers.items()}
