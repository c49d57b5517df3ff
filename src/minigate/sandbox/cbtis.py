"""Stateful CBTIS simulator: exactly the model minigate's connector assumes.

Confirmed by CBTIS's docs: payment intents create / query with the ``{code, data, message,
rid}`` envelope, ``next_action {type: call_sdk, data: wx params}``, statuses PENDING /
SUCCEEDED / CANCELLED, webhook ``{"notify_type": "payment_success", "data": {…}}``.
Modelled on Airwallex (see ``minigate.providers.cbtis.assumptions``): the login call that
issues bearer tokens with a TTL (``token_ttl``, short in tests so a token expires mid-flow;
``revoke_tokens()`` makes every issued token answer 401), cancel, refunds with
``merchant_refund_id``, and webhooks signed HMAC-SHA256 over ``x-timestamp`` + body, re-sent
1m, 5m, 15m, 1h, 6h, 24h (× ``time_scale``) until answered 200, each attempt re-signed with
a fresh timestamp.

Error codes (assumed): 401 bad credentials / token, 400 bad parameter, 404 unknown order or
refund, 409 ``merchant_order_id`` / ``merchant_refund_id`` reused with other parameters,
422 refund refused (not paid, or above what is left).
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from minigate.domain.money import MoneyError, format_minor, parse_minor
from minigate.providers.cbtis import assumptions as A
from minigate.providers.cbtis import signing
from minigate.sandbox import media
from minigate.sandbox.wechat_core import Md5PrepayOwner, Prepay, md5_pay_params

if TYPE_CHECKING:
    from minigate.sandbox.world import SandboxWorld

WEBHOOK_SCHEDULE = (60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
DEFAULT_TOKEN_TTL = timedelta(minutes=30)


@dataclass
class CbMerchant:
    client_id: str
    api_key: str
    webhook_secret: str
    currency: str
    appid: str
    wechat_mchid: str = "1900000309"
    wechat_key: str = field(default_factory=lambda: secrets.token_hex(16))


@dataclass
class Intent:
    merchant: CbMerchant
    order_id: str
    merchant_order_id: str
    amount_minor: int
    currency: str
    notify_url: str
    body: dict[str, Any]
    created_at: datetime
    prepay: Prepay | None = None
    status: str = "PENDING"
    pay_time: datetime | None = None
    refunded_minor: int = 0


@dataclass
class CbRefund:
    intent: Intent
    refund_id: str
    merchant_refund_id: str
    amount_minor: int
    body: dict[str, Any]
    status: str = "SETTLED"


class CbControl(BaseModel):
    """Control: token TTL in seconds, and/or revoke every issued token."""

    token_ttl_seconds: float | None = None
    revoke_tokens: bool = False


def _envelope(data: dict[str, Any] | None, code: int = 0, message: str = "ok",
              status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "rid": secrets.token_hex(16)}
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status)


def _error(code: int, message: str) -> JSONResponse:
    return _envelope(None, code, message, 401 if code == 401 else 200)


class CbtisSim(Md5PrepayOwner):
    def __init__(self, world: SandboxWorld, merchants: list[CbMerchant]) -> None:
        self.world = world
        self.merchants = {m.client_id: m for m in merchants}
        self.token_ttl = DEFAULT_TOKEN_TTL
        self.tokens: dict[str, tuple[CbMerchant, datetime]] = {}
        self.logins = 0
        self.unauthorised = 0  # calls answered 401 (tests)
        self.intents: dict[tuple[str, str], Intent] = {}  # (client_id, merchant_order_id)
        self.by_order_id: dict[str, Intent] = {}
        self.refunds: dict[tuple[str, str], CbRefund] = {}  # (client_id, merchant_refund_id)
        self._kept_intents = world.retention.ledger("cbtis payment intents", self._forget_intent)
        self._kept_refunds = world.retention.ledger("cbtis refunds", self._forget_refund)
        world.retention.also_sweep(self._sweep_tokens)

    # -- authentication ---------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        merchant = self.merchants.get(request.headers.get(A.CLIENT_ID_HEADER, ""))
        given = request.headers.get(A.API_KEY_HEADER, "")
        if merchant is None or not hmac.compare_digest(merchant.api_key.encode(), given.encode()):
            return _error(401, "invalid client id or api key")
        self.logins += 1
        token = secrets.token_urlsafe(32)
        expires_at = self.world.clock.now() + self.token_ttl
        self.tokens[token] = (merchant, expires_at)
        return JSONResponse({"token": token, "expires_at": expires_at.isoformat()}, 201)

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    async def _authorised(self, request: Request) -> tuple[CbMerchant, dict[str, Any]] | JSONResponse:
        header = request.headers.get("authorization", "")
        entry = self.tokens.get(header.removeprefix("Bearer ").strip())
        if not header.startswith("Bearer ") or entry is None:
            self.unauthorised += 1
            return _error(401, "unauthorized: invalid access token")
        merchant, expires_at = entry
        if self.world.clock.now() >= expires_at:
            self.unauthorised += 1
            return _error(401, "unauthorized: access token expired")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "body is not an object")
        return merchant, body

    # -- payment intents ----------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        checked = await self._authorised(request)
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        minor = self._create_problem(merchant, body)
        if isinstance(minor, str):
            return _error(400, minor)
        existing = self.intents.get((merchant.client_id, body["merchant_order_id"]))
        if existing is not None:
            if existing.body == body:
                return _envelope(self._intent_view(existing, with_action=True))
            return _error(409, "merchant_order_id already used")
        intent = Intent(merchant, "C" + secrets.token_hex(10).upper(), body["merchant_order_id"],
                        minor, body["currency"], str(body.get("notify_url") or ""), body,
                        self.world.clock.now())
        wechat = body["payment_method"]["wechat"]
        intent.prepay = self.world.wechat.create_prepay(
            appid=merchant.appid, mchid=merchant.wechat_mchid, openid=wechat["sub_openid"],
            amount_minor=minor, currency=intent.currency,
            description=str(body["description"]), expires_at=None,
            owner=self, record=intent,
        )
        self.intents[(merchant.client_id, intent.merchant_order_id)] = intent
        self.by_order_id[intent.order_id] = intent
        self._kept_intents.add((merchant.client_id, intent.merchant_order_id))
        return _envelope(self._intent_view(intent, with_action=True))

    def _forget_intent(self, key: Any) -> None:
        """The retention policy's: this intent and its prepay, as if never made."""
        intent = self.intents.pop(key, None)
        if intent is None:
            return
        self.by_order_id.pop(intent.order_id, None)
        if intent.prepay is not None:
            self.world.wechat.forget(intent.prepay.prepay_id)

    def _forget_refund(self, key: Any) -> None:
        self.refunds.pop(key, None)

    def _sweep_tokens(self, _cutoff: datetime | None) -> int:
        """Expired access tokens are refused like unknown ones: drop them."""
        now = self.world.clock.now()
        expired = [token for token, (_, expires_at) in self.tokens.items() if now >= expires_at]
        for token in expired:
            del self.tokens[token]
        return 0

    def _create_problem(self, merchant: CbMerchant, body: dict[str, Any]) -> int | str:
        """The amount in minor units, or what is wrong with the request."""
        for name in ("amount", "currency", "merchant_order_id", "description"):
            if not isinstance(body.get(name), str) or not body[name]:
                return f"{name} is required (string)"
        if len(body["merchant_order_id"]) > 32:
            return "merchant_order_id: maximum length is 32"
        if body["currency"] != merchant.currency:
            return f"currency: this account accepts {merchant.currency}"
        try:
            minor = parse_minor(body["amount"], body["currency"])
        except MoneyError:
            return "amount must be a decimal string in major units, e.g. \"12.30\""
        if minor <= 0:
            return "amount must be positive"
        method = body.get("payment_method")
        wechat = method.get("wechat") if isinstance(method, dict) else None
        if not isinstance(method, dict) or method.get("type") != "wechat" or not isinstance(
                wechat, dict) or wechat.get("flow") != "mini_program":
            return "payment_method must be wechat / mini_program"
        if wechat.get("sub_appid") != merchant.appid:
            return "sub_appid is not bound to this merchant"
        if not self.world.login.known_openid(merchant.appid, str(wechat.get("sub_openid"))):
            return "sub_openid does not belong to sub_appid"
        return minor

    def _intent_view(self, intent: Intent, *, with_action: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {
            "order_id": intent.order_id, "merchant_order_id": intent.merchant_order_id,
            "amount": format_minor(intent.amount_minor, intent.currency),
            "currency": intent.currency, "status": intent.status,
            "create_time": intent.created_at.isoformat(),
        }
        if intent.pay_time is not None:
            view["pay_time"] = intent.pay_time.isoformat()
        if with_action and intent.prepay is not None:
            view["next_action"] = {"type": "call_sdk",
                                   "data": self._pay_params(intent.merchant, intent.prepay)}
        return view

    def _pay_params(self, merchant: CbMerchant, prepay: Prepay) -> dict[str, str]:
        # Stable per prepay, so a replayed create answers exactly the same.
        ts = str(int(prepay.created_at.timestamp()))
        nonce = prepay.prepay_id[-16:]
        return md5_pay_params(merchant.appid, merchant.wechat_key, prepay.prepay_id, ts, nonce)

    async def prepay_paid(self, prepay: Prepay) -> None:
        await self._paid(prepay.record)

    async def _paid(self, intent: Intent) -> None:
        intent.status, intent.pay_time = "SUCCEEDED", self.world.clock.now()
        self._kept_intents.touch((intent.merchant.client_id, intent.merchant_order_id))
        if not intent.notify_url:
            return
        body = json.dumps({"notify_type": "payment_success", "data": {
            "order_id": intent.order_id, "merchant_order_id": intent.merchant_order_id,
        }}).encode()
        self.world.notifier.send(
            f"cbtis:{intent.merchant_order_id}", intent.notify_url, body,
            {"Content-Type": "application/json"}, WEBHOOK_SCHEDULE,
            lambda r: r.status_code == 200,
            headers_factory=lambda: self.webhook_headers(intent.merchant, body),
        )

    def webhook_headers(self, merchant: CbMerchant, body: bytes) -> dict[str, str]:
        """Signed afresh for every attempt: receivers refuse old timestamps."""
        timestamp = str(int(self.world.clock.now().timestamp() * 1000))
        return {"Content-Type": "application/json", A.TIMESTAMP_HEADER: timestamp,
                A.SIGNATURE_HEADER: signing.webhook_signature(merchant.webhook_secret,
                                                              timestamp, body)}

    def _find(self, merchant: CbMerchant, body: dict[str, Any]) -> Intent | None:
        intent = self.by_order_id.get(str(body.get("order_id") or ""))
        if intent is None:
            intent = self.intents.get((merchant.client_id, str(body.get("merchant_order_id"))))
        return intent if intent is not None and intent.merchant is merchant else None

    async def query(self, request: Request) -> Response:
        checked = await self._authorised(request)
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        if not body.get("order_id") and not body.get("merchant_order_id"):
            return _error(400, "order_id or merchant_order_id is required")
        intent = self._find(merchant, body)
        if intent is None:
            return _error(404, "payment intent not found")
        return _envelope(self._intent_view(intent))

    async def cancel(self, request: Request) -> Response:
        checked = await self._authorised(request)
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        intent = self._find(merchant, body)
        if intent is None:
            return _error(404, "payment intent not found")
        if intent.status == "SUCCEEDED":
            return _error(422, "payment intent already succeeded")
        if intent.status == "PENDING":
            intent.status = "CANCELLED"
            self._kept_intents.touch((merchant.client_id, intent.merchant_order_id))
            if intent.prepay is not None:
                self.world.wechat.close(intent.prepay.prepay_id)
        return _envelope(self._intent_view(intent))

    # -- refunds ------------------------------------------------------------------------
    async def refund(self, request: Request) -> Response:
        checked = await self._authorised(request)
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        refund_no = str(body.get("merchant_refund_id") or "")
        if not refund_no or not isinstance(body.get("amount"), str):
            return _error(400, "merchant_refund_id and amount are required")
        existing = self.refunds.get((merchant.client_id, refund_no))
        if existing is not None:
            if existing.body == body:
                return _envelope(self._refund_view(existing))
            return _error(409, "merchant_refund_id already used")
        intent = self._find(merchant, body)
        if intent is None:
            return _error(404, "payment intent not found")
        try:
            minor = parse_minor(body["amount"], intent.currency)
        except MoneyError:
            return _error(400, "amount must be a decimal string in major units")
        if intent.status != "SUCCEEDED":
            return _error(422, "payment intent is not paid")
        if minor <= 0 or intent.refunded_minor + minor > intent.amount_minor:
            return _error(422, "refund amount exceeds the refundable amount")
        intent.refunded_minor += minor
        self._kept_intents.touch((merchant.client_id, intent.merchant_order_id))
        refund = CbRefund(intent, "R" + secrets.token_hex(10).upper(), refund_no, minor, body)
        self.refunds[(merchant.client_id, refund_no)] = refund
        self._kept_refunds.add((merchant.client_id, refund_no))
        return _envelope(self._refund_view(refund))

    @staticmethod
    def _refund_view(refund: CbRefund) -> dict[str, Any]:
        return {"refund_id": refund.refund_id, "merchant_refund_id": refund.merchant_refund_id,
                "order_id": refund.intent.order_id,
                "amount": format_minor(refund.amount_minor, refund.intent.currency),
                "currency": refund.intent.currency, "status": refund.status}

    async def refund_query(self, request: Request) -> Response:
        checked = await self._authorised(request)
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        refund = self.refunds.get((merchant.client_id, str(body.get("merchant_refund_id"))))
        if refund is None:
            return _error(404, "refund not found")
        return _envelope(self._refund_view(refund))

    async def control(self, body: CbControl) -> dict[str, Any]:
        """Sandbox control: shorten the token TTL, or revoke every token (next call 401)."""
        if body.token_ttl_seconds is not None:
            self.token_ttl = timedelta(seconds=body.token_ttl_seconds)
        if body.revoke_tokens:
            self.revoke_tokens()
        return {"token_ttl_seconds": self.token_ttl.total_seconds(), "logins": self.logins}

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/cbtis", tags=["sandbox: cbtis"])
        router.add_api_route(A.LOGIN_PATH, self.login, methods=["POST"])
        router.add_api_route(A.CREATE_PATH, self.create, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route(A.QUERY_PATH, self.query, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route(A.CANCEL_PATH, self.cancel, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route(A.REFUND_PATH, self.refund, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route(A.REFUND_QUERY_PATH, self.refund_query, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route("/control", self.control, methods=["POST"])
        return router
