"""The transport's client-certificate seam: one extra client per certificate."""

from __future__ import annotations

import httpx
import pytest

from minigate.errors import ProviderUnavailable
from minigate.providers.base import ClientCertificate, HttpRequest
from minigate.transport import HttpxTransport, tls_client


async def test_requests_with_a_client_certificate_use_their_own_client() -> None:
    seen: list[str] = []

    def handler(label: str) -> httpx.MockTransport:
        return httpx.MockTransport(lambda r: (seen.append(label), httpx.Response(200))[1])

    made: list[ClientCertificate] = []

    def factory(cert: ClientCertificate) -> httpx.AsyncClient:
        made.append(cert)
        return httpx.AsyncClient(transport=handler("mtls"))

    transport = HttpxTransport(httpx.AsyncClient(transport=handler("plain")),
                               tls_factory=factory).for_provider("wechatpay-v2")
    cert = ClientCertificate("/c.pem", "/k.pem")
    await transport.send(HttpRequest("POST", "https://pay.test/a"))
    await transport.send(HttpRequest("POST", "https://pay.test/b", client_cert=cert))
    await transport.send(HttpRequest("POST", "https://pay.test/c", client_cert=cert))
    assert seen == ["plain", "mtls", "mtls"]
    assert made == [cert]  # one client (and pool) per certificate
    await transport.aclose()


def test_missing_certificate_files_fail_clearly() -> None:
    with pytest.raises(ProviderUnavailable, match="client certificate"):
        tls_client(ClientCertificate("/nonexistent/cert.pem", "/nonexistent/key.pem"))
