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
import ssl
from collections.abc import Callable

import httpx

from minigate import httppool
from minigate.errors import ProviderTimeout, ProviderUnavailable
from minigate.providers.base import ClientCertificate, HttpRequest, HttpResponse

log = logging.getLogger("minigate.transport")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)

#: Connection limits of every client minigate sends provider (and webhook) HTTP with.
#: httpx keeps 20 idle connections by default, and httpcore 1.0 closes an idle connection
#: whenever the pool holds more than that many connections *in all*: above 20 calls in
#: flight, nearly every call that ended closed its connection and the next one opened a
#: new one (a TCP and TLS handshake each). Keeping as many idle connections as may be open
#: removes that churn; idle ones still close after ``keepalive_expiry`` seconds. That is
#: shorter than the idle timeout of the servers at the other end (uvicorn's 5 s, which the
#: sandbox's simulators run behind; nginx's 75 s): reusing a connection at the moment its
#: server closes it fails the call with "Server disconnected", an unknown outcome.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100,
                           keepalive_expiry=4.0)


def http_client(**kwargs: object) -> httpx.AsyncClient:
    """An httpx client with minigate's timeouts and :data:`POOL_LIMITS`, whose connection
    pool passes in linear time (:mod:`minigate.httppool`)."""
    options: dict[str, object] = {"timeout": DEFAULT_TIMEOUT, "limits": POOL_LIMITS}
    return httppool.install(httpx.AsyncClient(**(options | kwargs)))  # type: ignore[arg-type]


ClientFactory = Callable[[ClientCertificate], httpx.AsyncClient]


def tls_client(cert: ClientCertificate) -> httpx.AsyncClient:
    """An httpx client that presents ``cert`` (mutual TLS) and verifies servers as usual."""
    context = ssl.create_default_context()
    try:
        context.load_cert_chain(cert.cert_path, cert.key_path)
    except (OSError, ssl.SSLError) as exc:
        # The paths are configuration, not secrets; the key's content is never shown.
        raise ProviderUnavailable(
            f"client certificate {cert.cert_path} / {cert.key_path} cannot be loaded",
            retryable=False,
        ) from exc
    return http_client(verify=context)


class HttpxTransport:
    """Provider HTTP over a shared :class:`httpx.AsyncClient` (connection pooling).

    Requests that carry a :class:`ClientCertificate` go through one extra client per
    certificate, made by ``tls_factory`` (tests inject one that stays in-process).
    """

    def __init__(self, client: httpx.AsyncClient | None = None, provider: str = "", *,
                 tls_factory: ClientFactory = tls_client,
                 _tls_clients: dict[ClientCertificate, httpx.AsyncClient] | None = None) -> None:
        self._client = client or http_client()
        self._provider = provider
        self._tls_factory = tls_factory
        self._tls_clients = {} if _tls_clients is None else _tls_clients

    def for_provider(self, provider: str) -> HttpxTransport:
        """The same connection pools, labelled for one provider's errors."""
        return HttpxTransport(self._client, provider, tls_factory=self._tls_factory,
                              _tls_clients=self._tls_clients)

    def _client_for(self, request: HttpRequest) -> httpx.AsyncClient:
        cert = request.client_cert
        if cert is None:
            return self._client
        if cert not in self._tls_clients:
            self._tls_clients[cert] = self._tls_factory(cert)
        return self._tls_clients[cert]

    async def send(self, request: HttpRequest) -> HttpResponse:
        client = self._client_for(request)
        try:
            response = await client.request(
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

    async def aclose_tls_clients(self) -> None:
        """Close the per-certificate clients (the shared client belongs to its creator)."""
        for client in list(self._tls_clients.values()):
            await client.aclose()
        self._tls_clients.clear()

    async def aclose(self) -> None:
        await self.aclose_tls_clients()
        await self._client.aclose()


def _path(url: str) -> str:
    """The URL without its query string: queries may carry signatures, never log them."""
    return url.split("?", 1)[0]
