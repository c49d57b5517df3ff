"""WeChat ``jscode2session``: turn a ``wx.login`` code into the shopper's openid, server-side.

The client never sends an openid we trust: it sends the one-time code, and only WeChat's
answer to our server (authenticated with the AppSecret) gives the openid. The
``session_key`` in that answer is never stored, logged or returned.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from minigate.errors import (
    InvalidRequest,
    MinigateError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from minigate.providers.base import HttpRequest, HttpResponse, Transport


class LoginBlocked(MinigateError):
    status, type, code = 403, "invalid_request_error", "login_blocked"


def build_jscode2session(base_url: str, appid: str, secret: str, code: str) -> HttpRequest:
    query = urlencode(
        {"appid": appid, "secret": secret, "js_code": code, "grant_type": "authorization_code"}
    )
    return HttpRequest("GET", f"{base_url.rstrip('/')}/sns/jscode2session?{query}")


def parse_jscode2session(response: HttpResponse) -> str:
    """The openid, or the documented error: 40029 bad code, 45011 quota, 40226 blocked, -1."""
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        raise ProviderError("jscode2session answered non-JSON", provider="wechat") from exc
    if not isinstance(data, dict):
        raise ProviderError("jscode2session answered non-object JSON", provider="wechat")
    errcode = int(data.get("errcode") or 0)  # success often omits errcode
    if errcode == 0 and isinstance(data.get("openid"), str) and data["openid"]:
        return str(data["openid"])
    message = str(data.get("errmsg", ""))[:200]
    if errcode == 40029:
        raise InvalidRequest(
            "login code is invalid, expired or already used; call wx.login again",
            code="invalid_login_code", param="login_code",
        )
    if errcode == 40226:
        raise LoginBlocked("WeChat blocked this user's login (40226, high-risk user)")
    if errcode == 45011:
        raise RateLimited("WeChat login quota reached (45011); retry in a minute")
    if errcode == -1:
        raise ProviderUnavailable("WeChat login is busy (-1); retry shortly", provider="wechat",
                                  provider_code="-1", retryable=True)
    raise ProviderError(f"jscode2session failed: {errcode} {message}", provider="wechat",
                        provider_code=str(errcode))


class WechatLogin:
    """``jscode2session`` over the transport."""

    def __init__(self, transport: Transport, base_url: str, appid: str, secret: str) -> None:
        self._transport = transport
        self._base_url = base_url
        self.appid = appid
        self._secret = secret

    async def openid(self, code: str) -> str:
        if not code or len(code) > 128:
            raise InvalidRequest("login_code is required (the wx.login code)", param="login_code",
                                 code="missing_login_code")
        request = build_jscode2session(self._base_url, self.appid, self._secret, code)
        return parse_jscode2session(await self._transport.send(request))
