"""Stateful QFPay simulator: payment (800213), query, refund, close, JSON notifications.

It enforces what QFPay enforces, with QFPay's codes (providers.md §2.9): 1108 for a missing
or wrong ``X-QF-APPCODE``/``X-QF-SIGN``, 1103 for a body that is not a form, 1104 for a
missing or bad parameter (amount not integer cents, ``expired_time`` outside 5–120, wrong
currency, ``mchid`` where none was assigned), 1102 for an ``out_trade_no`` reused with other
parameters (the same parameters again get the same answer), 1268 unknown order, 1261 refund
of an unpaid order, 1272 refund above what is left, 1260 close of a paid order.

After the shopper pays, the notification is JSON serialised the way QFPay does it (Python
``json.dumps`` defaults: ``", "``/``": "`` separators, ASCII escapes), signed over the raw
bytes, re-sent 2m, 10m, 10m, 60m, 2h, 6h, 15h (× ``time_scale``) until ``200 SUCCESS``.

``in_progress`` (e.g. ``"1143"``) makes create answer that code (with pay params) and the
query report it until the shopper has paid: the order then only settles by query.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from minigate.domain.money import MAX_MINOR
from minigate.providers.qfpay import signing
from minigate.sandbox import media
from minigate.sandbox.wechat_core import Md5PrepayOwner, Prepay, md5_pay_params

if TYPE_CHECKING:
    from minigate.sandbox.world import SandboxWorld

NOTIFY_SCHEDULE = (120.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)
CENTS_RE = re.compile(r"[1-9][0-9]{0,11}")
TXDTM_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
DEFAULT_EXPIRY_MINUTES = 30


@dataclass
class QfMerchant:
    app_code: str
    client_key: str
    currency: str
    appid: str  # the mini program QFPay bound to this app code
    mchid: str = ""
    wechat_mchid: str = "1900000209"
    wechat_key: str = field(default_factory=lambda: secrets.token_hex(16))
    notify_url: str = ""  # QFPay binds one URL per app code (configured by e-mail)
    #: What the account has taken and not yet been paid out (minor units), from which QFPay
    #: pays refunds (``1269`` when it is short). None: not modelled, refunds are limited
    #: only by each payment's refundable amount. Set with ``POST /control``.
    unsettled_minor: int | None = None


@dataclass
class QfTxn:
    merchant: QfMerchant
    kind: str  # "payment" or "refund"
    out_trade_no: str
    syssn: str
    amount_minor: int
    currency: str
    params: dict[str, str]
    response: dict[str, Any]
    txdtm: str
    sysdtm: str
    prepay: Prepay | None = None
    orig: QfTxn | None = None
    refunded_minor: int = 0
    paid_at: datetime | None = None
    closed: bool = False


class QfControl(BaseModel):
    """Control: force create/query to answer 1143/1145 (None: normal behaviour); set the
    notification URL bound to the sandbox app code (QFPay binds it by e-mail); set the
    account's unsettled balance, which refunds draw on (None: not modelled). A field left
    out stays as it is."""

    in_progress: str | None = None
    notify_url: str | None = None
    unsettled_minor: int | None = Field(default=None, ge=0, le=MAX_MINOR)


def _answer(code: str, message: str = "", **extra: Any) -> JSONResponse:
    return JSONResponse({"respcd": code, "respmsg": message, "resperr": message, **extra})


class QfpaySim(Md5PrepayOwner):
    def __init__(self, world: SandboxWorld, merchants: list[QfMerchant]) -> None:
        self.world = world
        self.merchants = {m.app_code: m for m in merchants}
        self.txns: dict[tuple[str, str], QfTxn] = {}  # (app_code, out_trade_no)
        self.by_syssn: dict[str, QfTxn] = {}
        self.in_progress: str | None = None
        self._kept = world.retention.ledger("qfpay transactions", self._forget)

    # -- request checks ---------------------------------------------------------------
    async def _signed_form(self, request: Request, required: tuple[str, ...]
                           ) -> tuple[QfMerchant, dict[str, str]] | JSONResponse:
        merchant = self.merchants.get(request.headers.get("x-qf-appcode", ""))
        if merchant is None:
            return _answer("1108", "unknown X-QF-APPCODE")
        try:
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True,
                              strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return _answer("1103", "request format error: body is not a form")
        form = dict(pairs)
        if len(form) != len(pairs):
            return _answer("1103", "request format error: repeated parameter")
        sign_type = request.headers.get("x-qf-signtype") or signing.MD5
        if sign_type not in signing.SIGN_TYPES:
            return _answer("1108", "unsupported X-QF-SIGNTYPE")
        expected = signing.sign(form, merchant.client_key, sign_type)
        if not signing.signatures_match(expected, request.headers.get("x-qf-sign")):
            return _answer("1108", "signature error")
        missing = [name for name in required if not form.get(name)]
        if missing:
            return _answer("1104", f"parameter error: {', '.join(missing)} required")
        if form.get("mchid", merchant.mchid) != merchant.mchid:
            return _answer("1104", "parameter error: mchid")
        return merchant, form

    def _replay(self, merchant: QfMerchant, form: dict[str, str]) -> JSONResponse | None:
        """The same out_trade_no again: same parameters → same answer; else 1102."""
        txn = self.txns.get((merchant.app_code, form["out_trade_no"]))
        if txn is None:
            return None
        if txn.params == form:
            return JSONResponse(txn.response)
        return _answer("1102", "duplicate request: out_trade_no already used")

    def _stamp(self) -> str:
        return self.world.clock.now().strftime("%Y-%m-%d %H:%M:%S")

    def _new_syssn(self) -> str:
        return self.world.clock.now().strftime("%Y%m%d") + secrets.token_hex(9)[:18]

    # -- payment ------------------------------------------------------------------------
    async def payment(self, request: Request) -> Response:
        checked = await self._signed_form(request, (
            "pay_type", "txamt", "txcurrcd", "out_trade_no", "txdtm", "sub_openid"))
        if isinstance(checked, JSONResponse):
            return checked
        merchant, form = checked
        problem = self._payment_problem(merchant, form)
        if problem:
            return _answer("1104", f"parameter error: {problem}")
        if (replay := self._replay(merchant, form)) is not None:
            return replay
        txn = self._new_txn(merchant, "payment", form)
        minutes = int(form.get("expired_time") or DEFAULT_EXPIRY_MINUTES)
        prepay = self.world.wechat.create_prepay(
            appid=merchant.appid, mchid=merchant.wechat_mchid, openid=form["sub_openid"],
            amount_minor=txn.amount_minor, currency=txn.currency,
            description=form.get("goods_name", ""),
            expires_at=self.world.clock.now() + timedelta(minutes=minutes),
            owner=self, record=txn,
        )
        txn.prepay = prepay
        code = self.in_progress or "0000"
        txn.response = {
            "respcd": code, "respmsg": "" if code == "0000" else "please query the result",
            "resperr": "", "pay_type": form["pay_type"], "txamt": str(txn.amount_minor),
            "txcurrcd": txn.currency, "out_trade_no": txn.out_trade_no, "syssn": txn.syssn,
            "txdtm": txn.txdtm, "sysdtm": txn.sysdtm, "chnlsn": "", "udid": "",
            "pay_params": self._pay_params(merchant, prepay),
        }
        return JSONResponse(txn.response)

    def _payment_problem(self, merchant: QfMerchant, form: dict[str, str]) -> str:
        if form["pay_type"] != "800213":
            return "pay_type (this sandbox app serves 800213 only)"
        if not CENTS_RE.fullmatch(form["txamt"]):
            return "txamt must be a positive integer number of cents"
        if form["txcurrcd"] != merchant.currency:
            return f"txcurrcd (this account settles {merchant.currency})"
        if not TXDTM_RE.fullmatch(form["txdtm"]):
            return "txdtm must be YYYY-MM-DD hh:mm:ss"
        expiry = form.get("expired_time")
        if expiry is not None and not (expiry.isdigit() and 5 <= int(expiry) <= 120):
            return "expired_time must be 5-120 minutes"
        if not self.world.login.known_openid(merchant.appid, form["sub_openid"]):
            return "sub_openid does not belong to the bound mini program"
        return ""

    def _new_txn(self, merchant: QfMerchant, kind: str, form: dict[str, str],
                 orig: QfTxn | None = None) -> QfTxn:
        txn = QfTxn(merchant, kind, form["out_trade_no"], self._new_syssn(),
                    int(form["txamt"]), orig.currency if orig else form["txcurrcd"], dict(form),
                    {}, form["txdtm"], self._stamp(), orig=orig)
        self.txns[(merchant.app_code, txn.out_trade_no)] = txn
        self.by_syssn[txn.syssn] = txn
        self._kept.add((merchant.app_code, txn.out_trade_no))
        return txn

    def _forget(self, key: Any) -> None:
        """The retention policy's: this transaction and its prepay, as if never made (a
        refund kept longer still answers for its payment)."""
        txn = self.txns.pop(key, None)
        if txn is None:
            return
        self.by_syssn.pop(txn.syssn, None)
        if txn.prepay is not None:
            self.world.wechat.forget(txn.prepay.prepay_id)

    def _pay_params(self, merchant: QfMerchant, prepay: Prepay) -> dict[str, str]:
        return md5_pay_params(merchant.appid, merchant.wechat_key, prepay.prepay_id,
                              str(int(self.world.clock.now().timestamp())),
                              secrets.token_hex(16))

    # -- notifications ------------------------------------------------------------------
    async def prepay_paid(self, prepay: Prepay) -> None:
        await self._paid(prepay.record)

    async def _paid(self, txn: QfTxn) -> None:
        if txn.paid_at is None and txn.merchant.unsettled_minor is not None:
            txn.merchant.unsettled_minor += txn.amount_minor
        txn.paid_at = self.world.clock.now()
        self._kept.touch((txn.merchant.app_code, txn.out_trade_no))
        self.notify(txn)

    def notification_body(self, txn: QfTxn) -> bytes:
        """Serialised as QFPay does: Python ``json.dumps`` defaults."""
        payload = {
            "status": "1", "notify_type": txn.kind, "pay_type": "800213",
            "syssn": txn.syssn, "out_trade_no": txn.out_trade_no,
            "txamt": str(txn.amount_minor), "txcurrcd": txn.currency, "txdtm": txn.txdtm,
            "sysdtm": txn.sysdtm,
            "paydtm": (txn.paid_at or self.world.clock.now()).strftime("%Y-%m-%d %H:%M:%S"),
            "cancel": "0", "respcd": "0000", "goods_name": txn.params.get("goods_name", ""),
            "cash_fee": "0", "cash_fee_type": "", "chnlsn": "", "chnlsn2": "",
        }
        if txn.merchant.mchid:
            payload["mchid"] = txn.merchant.mchid
        if txn.orig is not None:
            payload["origssn"] = txn.orig.syssn
        return json.dumps(payload).encode()

    def notify(self, txn: QfTxn) -> None:
        url = txn.merchant.notify_url
        if not url:
            return
        body = self.notification_body(txn)
        sign = signing.notification_signature(body, txn.merchant.client_key)
        self.world.notifier.send(
            f"qfpay:{txn.kind}:{txn.out_trade_no}", url, body,
            {"Content-Type": "application/json", "X-QF-SIGN": sign}, NOTIFY_SCHEDULE,
            lambda r: r.status_code == 200 and r.text.strip() == "SUCCESS",
        )

    # -- query, refund, close -----------------------------------------------------------
    def _item(self, txn: QfTxn) -> dict[str, Any]:
        item: dict[str, Any] = {
            "syssn": txn.syssn, "out_trade_no": txn.out_trade_no, "txamt": str(txn.amount_minor),
            "txcurrcd": txn.currency, "order_type": txn.kind, "txdtm": txn.txdtm,
            "sysdtm": txn.sysdtm, "pay_type": "800213", "chnlsn": "", "errmsg": "",
            "respcd": self._item_code(txn), "cancel": self._cancel(txn),
        }
        if txn.orig is not None:
            item["origssn"] = txn.orig.syssn
        return item

    def _item_code(self, txn: QfTxn) -> str:
        prepay = txn.prepay
        if txn.kind == "refund" or (prepay is not None and prepay.status == "SUCCESS"):
            return "0000"
        if txn.closed or (prepay is not None and prepay.status == "CLOSED"):
            return "1264"
        if prepay is not None and self.world.clock.now() >= prepay.expires_at:
            return "1181"
        return self.in_progress or "1143"  # not paid yet: the shopper may still pay

    @staticmethod
    def _cancel(txn: QfTxn) -> str:
        if txn.closed:
            return "2"
        if txn.refunded_minor:
            return "3" if txn.refunded_minor >= txn.amount_minor else "5"
        return "0"

    async def query(self, request: Request) -> Response:
        checked = await self._signed_form(request, ())
        if isinstance(checked, JSONResponse):
            return checked
        merchant, form = checked
        wanted = [n for n in form.get("out_trade_no", "").split(",") if n]
        syssns = [n for n in form.get("syssn", "").split(",") if n]
        found = [self.txns.get((merchant.app_code, n)) for n in wanted]
        found += [self.by_syssn.get(n) for n in syssns]
        items = [self._item(t) for t in found if t is not None and t.merchant is merchant]
        return JSONResponse({"respcd": "0000", "resperr": "", "respmsg": "", "page": "1",
                             "page_size": "10", "data": items})

    async def refund(self, request: Request) -> Response:
        checked = await self._signed_form(request, ("syssn", "out_trade_no", "txamt", "txdtm"))
        if isinstance(checked, JSONResponse):
            return checked
        merchant, form = checked
        if (replay := self._replay(merchant, form)) is not None:
            return replay
        orig = self.by_syssn.get(form["syssn"])
        if orig is None or orig.merchant is not merchant or orig.kind != "payment":
            return _answer("1268", "order does not exist")
        if not CENTS_RE.fullmatch(form["txamt"]) or not TXDTM_RE.fullmatch(form["txdtm"]):
            return _answer("1104", "parameter error: txamt / txdtm")
        if orig.prepay is None or orig.prepay.status not in ("SUCCESS", "REFUND"):
            return _answer("1261", "order not paid")
        minor = int(form["txamt"])
        if orig.refunded_minor + minor > orig.amount_minor:
            return _answer("1272", "refund amount exceeds the refundable amount")
        if merchant.unsettled_minor is not None:
            if minor > merchant.unsettled_minor:
                return _answer("1269", "unsettled amount insufficient for the refund")
            merchant.unsettled_minor -= minor
        orig.refunded_minor += minor
        orig.prepay.refunded_minor = orig.refunded_minor
        self._kept.touch((merchant.app_code, orig.out_trade_no))
        txn = self._new_txn(merchant, "refund", form, orig)
        txn.paid_at = self.world.clock.now()
        txn.response = {
            "respcd": "0000", "respmsg": "", "resperr": "", "syssn": txn.syssn,
            "orig_syssn": orig.syssn, "txamt": str(minor), "sysdtm": txn.sysdtm,
            "out_trade_no": txn.out_trade_no, "cash_fee": "0", "cash_fee_type": "",
            "cash_refund_fee": "0", "cash_refund_fee_type": "",
        }
        self.notify(txn)
        return JSONResponse(txn.response)

    async def close(self, request: Request) -> Response:
        checked = await self._signed_form(request, ("out_trade_no",))
        if isinstance(checked, JSONResponse):
            return checked
        merchant, form = checked
        txn = self.txns.get((merchant.app_code, form["out_trade_no"]))
        if txn is None or txn.kind != "payment" or txn.prepay is None:
            return _answer("1268", "order does not exist")
        if txn.prepay.status == "SUCCESS":
            return _answer("1260", "order already paid")
        if txn.closed:
            return _answer("1142", "order already closed")
        txn.closed = True
        self.world.wechat.close(txn.prepay.prepay_id)
        self._kept.touch((merchant.app_code, txn.out_trade_no))
        return _answer("0000", "", out_trade_no=txn.out_trade_no, syssn=txn.syssn)

    async def control(self, body: QfControl) -> JSONResponse:
        """Sandbox control: force 1143/1145 (null to stop), re-bind the notification URL,
        set the unsettled balance refunds draw on (null: not modelled). A field left out
        stays as it is."""
        if body.in_progress not in (None, "1143", "1145"):
            return JSONResponse({"error": "in_progress must be 1143, 1145 or null"}, 400)
        if "in_progress" in body.model_fields_set:
            self.in_progress = body.in_progress
        for merchant in self.merchants.values():
            if body.notify_url is not None:
                merchant.notify_url = body.notify_url
            if "unsettled_minor" in body.model_fields_set:
                merchant.unsettled_minor = body.unsettled_minor
        return JSONResponse({"in_progress": self.in_progress, "unsettled_minor": {
            m.app_code: m.unsettled_minor for m in self.merchants.values()}})

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/qfpay", tags=["sandbox: qfpay"])
        router.add_api_route("/trade/v1/payment", self.payment, methods=["POST"],
                             openapi_extra=media.FORM)
        router.add_api_route("/trade/v1/query", self.query, methods=["POST"],
                             openapi_extra=media.FORM)
        router.add_api_route("/trade/v1/refund", self.refund, methods=["POST"],
                             openapi_extra=media.FORM)
        router.add_api_route("/trade/v1/close", self.close, methods=["POST"],
                             openapi_extra=media.FORM)
        router.add_api_route("/control", self.control, methods=["POST"])
        return router

