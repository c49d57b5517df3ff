"""The one place that does provider HTTP.

It sends :class:`~minigate.providers.base.HttpRequest` values with httpx and gives back
:class:`~minigate.providers.base.HttpResponse` values, translating httpx's errors into the
two that matter for money:

* :class:`~minigate.errors.ProviderUnavailable` — the request never left (connect error,
  DNS): retrying with the same provider numbers is safe.
* :class:`~minigate.errors.ProviderTimeout` — it may have arrived: the outcome is unknown
  until a query says otherwise. Never retried blindly with new numbers.
"""

from __future__ import annotations

import logging

import httpx

from minigate.errors import ProviderTimeout, ProviderUnavailable
from minigate.providers.base import HttpRequest, HttpResponse

log = logging.getLogger("minigate.transport")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class HttpxTransport:
    """Provider HTTP over a shared :class:`httpx.AsyncClient` (connection pooling)."""

    def __init__(self, client: httpx.AsyncClient | None = None, provider: str = "") -> None:
        self._client = client or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self._provider = provider

    def for_provider(self, provider: str) -> HttpxTransport:
        """The same connection pool, labelled for one provider's errors."""
        return HttpxTransport(self._client, provider)

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            response = await self._client.request(
                request.method, request.url, headers=dict(request.headers), content=request.body
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ProviderUnavailable(
                f"{self._provider or 'provider'} unreachable", provider=self._provider,
                retryable=True,
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{self._provider or 'provider'} did not answer in time; outcome unknown",
                provider=self._provider, retryable=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderTimeout(
                f"{self._provider or 'provider'} connection failed mid-request; outcome unknown",
                provider=self._provider, retryable=True,
            ) from exc
        log.debug("%s %s -> %s", request.method, _path(request.url), response.status_code)
        return HttpResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=response.content,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _path(url: str) -> str:
    """The URL without its query string: queries may carry signatures, never log them."""
    return url.split("?", 1)[0]
