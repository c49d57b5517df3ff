"""/docs and /redoc work offline; the access log keeps working with query redaction."""

from __future__ import annotations

import logging
import re

from uvicorn.logging import AccessFormatter

from minigate.logs import RedactQueryValues
from tests.support import Harness


async def test_docs_pages_reference_only_assets_minigate_serves(sqlite_gateway: Harness) -> None:
    api = sqlite_gateway.api
    for page in ("/docs", "/redoc"):
        r = await api.get(page)
        assert r.status_code == 200
        html = r.text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
        urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
        assert urls, html
        assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
        for url in urls:
            assert url.startswith("/"), url  # same origin: nothing from a CDN
            asset = await api.get(url)
            assert asset.status_code == 200, url
            if url.endswith(".js"):
                assert len(asset.content) > 100_000  # the real bundle, not a stub


def test_uvicorns_access_formatter_with_a_redacted_query() -> None:
    """uvicorn's access logger passes (client, method, path, version, status) as args and
    its formatter unpacks them: redaction must keep them."""
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/client/orders/ord_1?client_token=ct_SECRET&x=1", "1.1",
         200), None)
    assert RedactQueryValues().filter(record)
    line = AccessFormatter("%(client_addr)s %(request_line)s %(status_code)s",
                           use_colors=False).format(record)
    assert line == "127.0.0.1:5000 GET /v1/client/orders/ord_1?client_token=***&x=*** HTTP/1.1 200 OK"


def test_httpx_log_lines_are_redacted_too() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
                               ("GET", "https://api.weixin.qq.com/sns/jscode2session?secret=S3&js_code=c",
                                "HTTP/1.1", 200, "OK"), None)
    RedactQueryValues().filter(record)
    message = record.getMessage()
    assert "S3" not in message and "secret=***&js_code=***" in message and '200 OK' in message
