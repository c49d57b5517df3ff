"""The dashboard's routes: a small Starlette app mounted at ``/dashboard``.

GET pages read through :mod:`minigate.dashboard.queries`; every POST checks the session's
CSRF token first and then calls the service function the merchant API calls for the same
action (refunds under an Idempotency-Key with the API's own fingerprint, close, redeliver).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from minigate.api.schemas import CreateRefund
from minigate.dashboard import queries
from minigate.dashboard.chart import bar_chart
from minigate.dashboard.security import (
    COOKIE,
    MAX_NAME,
    Passwords,
    SecurityHeaders,
    Session,
    Sessions,
    SigninThrottle,
    csrf_ok,
)
from minigate.domain.money import Money, MoneyError, parse_minor
from minigate.domain.states import OrderStatus
from minigate.errors import MinigateError
from minigate.providers.base import Channel
from minigate.service import orders, payments, refunds
from minigate.service.context import ServiceContext
from minigate.service.idempotency import Attempt, request_fingerprint, run_idempotent

if TYPE_CHECKING:
    from minigate.app import Runtime

log = logging.getLogger("minigate.dashboard")

HERE = Path(__file__).parent
MAX_FORM = 16 * 1024
ORDER_ID = re.compile(r"[A-Za-z0-9_]{1,32}")
#: Messages shown after a redirect, by code (never text from the request).
NOTICES = {
    "refund": "Refund sent. Its outcome is in the timeline.",
    "closed": "Order closed.",
    "redelivered": "Event queued for delivery again.",
    "paid": "The sandbox shopper paid; the provider's notification follows in a moment.",
    "created": "Test order created.",
    "signedout": "You are signed out.",
}
Handler = Callable[[Request], Awaitable[Response]]


class Dashboard:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        cfg = settings.dashboard
        self.sandbox = runtime.sandbox_mode
        secret = cfg.secret_key.get_secret_value() or secrets.token_urlsafe(32)
        self.sessions = Sessions(secret, cfg.session_minutes * 60)
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self.passwords = Passwords(cfg.users, api_key=api_key if self.sandbox else None)
        self.throttle = SigninThrottle(cfg.signin_delay_seconds)
        #: Client tokens of the sandbox orders created here, so "pay as the shopper" can
        #: use them. Kept in memory only, never rendered; bounded.
        self.sandbox_tokens: OrderedDict[str, str] = OrderedDict()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"]),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.env.filters["dt"] = _dt

    @property
    def ctx(self) -> ServiceContext:
        return self.runtime.ctx

    # -- plumbing ------------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        return self.sessions.load(request.cookies.get(COOKIE))

    def render(self, request: Request, template: str, status: int = 200,
               session: Session | None = None, **values: Any) -> HTMLResponse:
        session = session or self.session(request)
        base = request.scope.get("root_path", "")
        body = self.env.get_template(template).render(
            base=base, session=session, sandbox=self.sandbox,
            csrf=session.csrf if session else "", user=session.user if session else "",
            notice=NOTICES.get(request.query_params.get("notice", ""), ""), **values)
        return HTMLResponse(body, status)

    def set_cookie(self, response: Response, request: Request, session: Session) -> None:
        response.set_cookie(COOKIE, self.sessions.dump(session), max_age=self.sessions.max_age,
                            path=request.scope.get("root_path", "") or "/", httponly=True,
                            samesite="strict", secure=not self.sandbox)

    def redirect(self, request: Request, path: str, **query: str) -> RedirectResponse:
        url = request.scope.get("root_path", "") + path
        if query:
            url += "?" + urlencode(query)
        return RedirectResponse(url, status_code=303)

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        """The url-encoded form, bounded in size and fields (first value of each name)."""
        if int(request.headers.get("content-length") or 0) > MAX_FORM:
            return {}
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return {}
        fields: dict[str, str] = {}
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=40)
        except (ValueError, UnicodeDecodeError):
            return {}
        for name, value in pairs:
            fields.setdefault(name, value)
        return fields

    def page(self, handler: Handler) -> Handler:
        """A GET page for signed-in users; others go to the sign-in page."""
        async def wrapped(request: Request) -> Response:
            session = self.session(request)
            if session is None or not session.signed_in:
                return self.redirect(request, "/login")
            return await handler(request)
        return wrapped

    def action(self, handler: Callable[[Request, dict[str, str]], Awaitable[Response]]
               ) -> Handler:
        """A POST for signed-in users carrying their CSRF token; anything else is refused
        before the form is looked at any further."""
        async def wrapped(request: Request) -> Response:
            session = self.session(request)
            if session is None or not session.signed_in:
                return self.refused(request, "You are not signed in.", 403)
            form = await self.form(request)
            if not csrf_ok(session, form.get("csrf")):
                return self.refused(request, "This form was not sent from your dashboard "
                                    "session (its CSRF token is missing or wrong). Nothing "
                                    "was changed.", 403)
            return await handler(request, form)
        return wrapped

    def refused(self, request: Request, message: str, status: int) -> HTMLResponse:
        return self.render(request, "message.html", status, title="Refused", message=message)

    # -- sign-in -------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        session = self.session(request)
        if session is not None and session.signed_in:
            return self.redirect(request, "/")
        return self.login_form(request, session, "")

    def login_form(self, request: Request, session: Session | None, error: str,
                   status: int = 200) -> Response:
        if session is None or session.signed_in:
            session = self.sessions.new()
        response = self.render(request, "login.html", status, session=session, error=error,
                               has_users=bool(self.passwords.users))
        self.set_cookie(response, request, session)
        return response

    async def login(self, request: Request) -> Response:
        session = self.session(request)
        if session is not None and session.signed_in:  # already in: change nothing
            return self.redirect(request, "/")
        form = await self.form(request)
        if not csrf_ok(session, form.get("csrf")):
            return self.login_form(request, None, "The sign-in form had expired; try again.",
                                   403)
        name = form.get("name", "").strip()
        user = await self.passwords.check(name, form.get("password", ""))
        if user is None:
            address = request.client.host if request.client else "?"
            await asyncio.sleep(self.throttle.failed(name[:MAX_NAME], address))
            log.info("dashboard: failed sign-in for %r from %s", name[:MAX_NAME], address)
            return self.login_form(request, session, "Wrong name or password.", 401)
        self.throttle.succeeded(name)
        response = self.redirect(request, "/")
        self.set_cookie(response, request, self.sessions.new(user))
        return response

    async def logout(self, request: Request, form: dict[str, str]) -> Response:
        session = self.session(request)
        assert session is not None
        self.sessions.end(session)
        response = self.redirect(request, "/login", notice="signedout")
        response.delete_cookie(COOKIE, path=request.scope.get("root_path", "") or "/",
                               httponly=True, samesite="strict", secure=not self.sandbox)
        return response

    # -- pages ---------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        data = await queries.overview(self.ctx)
        return self.render(request, "overview.html", data=data, chart=bar_chart(data.chart),
                           webhooks=self.ctx.webhooks_enabled)

    async def orders_page(self, request: Request) -> Response:
        f = queries.OrderFilter.parse(request.query_params)
        cursor = request.query_params.get("cursor") or None
        error = "; ".join(f.problems)
        page = queries.OrderPage([], None)
        if not error:
            try:
                page = await queries.search_orders(self.ctx, f, cursor)
            except MinigateError as exc:
                error = exc.message
        next_url = (f"?{urlencode({**f.query(), 'cursor': page.next_cursor})}"
                    if page.next_cursor else "")
        return self.render(request, "orders.html", f=f, page=page, error=error,
                           next_url=next_url, statuses=[s.value for s in OrderStatus],
                           providers=sorted(self.ctx.providers))

    async def order_page(self, request: Request, error: str = "", status: int = 200
                         ) -> Response:
        order_id = request.path_params["order_id"]
        if not ORDER_ID.fullmatch(order_id):
            return self.refused(request, "No such order.", 404)
        try:
            order = await orders.get_order(self.ctx, order_id)
        except MinigateError:
            return self.render(request, "message.html", 404, title="Not found",
                               message=f"There is no order {order_id}.")
        detail = await queries.order_detail(self.ctx, order_id)
        assert detail is not None
        return self.render(
            request, "order.html", status, order=order, detail=detail, error=error,
            refundable=OrderStatus(order["status"]) in refunds.REFUNDABLE
            and detail.refundable_minor > 0,
            closable=order["status"] in ("created", "pending", "unknown"),
            payable=self.sandbox and order["status"] in ("created", "pending"),
            holds_token=order_id in self.sandbox_tokens,
            webhooks=self.ctx.webhooks_enabled)

    async def events_page(self, request: Request) -> Response:
        state = request.query_params.get("state", "")
        state = state if state in queries.EVENT_FILTERS else ""
        raw = request.query_params.get("before", "")
        before = int(raw) if raw.isdigit() and len(raw) < 19 else None
        rows, more = await queries.deliveries(self.ctx, state, before)
        next_url = f"?{urlencode({'state': state, 'before': more})}" if more else ""
        return self.render(request, "events.html", rows=rows, state=state, next_url=next_url,
                           webhooks=self.ctx.webhooks_enabled)

    async def sandbox_page(self, request: Request) -> Response:
        if not self.sandbox:
            return self.refused(request, "The shopper's wallet exists only in sandbox mode.",
                                404)
        return self.render(request, "sandbox.html", error="",
                           providers=sorted(self.ctx.providers), form={})

    # -- actions -------------------------------------------------------------------------

    async def refund_confirm(self, request: Request, form: dict[str, str]) -> Response:
        """Step one: check the amount and show what will happen, with a fresh key."""
        order_id = request.path_params["order_id"]
        try:
            order = await orders.get_order(self.ctx, order_id)
        except MinigateError as exc:
            return self.refused(request, exc.message, exc.status)
        full = form.get("full") == "1" or not form.get("amount", "").strip()
        amount = None if full else form.get("amount", "").strip()
        detail = await queries.order_detail(self.ctx, order_id)
        assert detail is not None
        if amount is not None:
            try:
                minor = parse_minor(amount, order["currency"])
            except MoneyError as exc:
                return await self.order_page(request, str(exc), 422)
            if not 0 < minor <= detail.refundable_minor:
                return await self.order_page(
                    request, f"Refund between 0 and {detail.refundable} {order['currency']}.",
                    422)
        return self.render(request, "refund_confirm.html", order=order,
                           amount=amount or detail.refundable, full=amount is None,
                           reason=form.get("reason", "")[:255],
                           key="dash_" + secrets.token_urlsafe(18))

    async def refund(self, request: Request, form: dict[str, str]) -> Response:
        """Step two: ``POST /v1/orders/{id}/refunds`` as the API does it, same key rules."""
        order_id = request.path_params["order_id"]
        key = form.get("idempotency_key", "")
        if not 1 <= len(key) <= 255:
            return self.refused(request, "The refund form lost its Idempotency-Key.", 400)
        try:
            body = CreateRefund(amount=None if form.get("full") == "1"
                                else form.get("amount") or None,
                                reason=form.get("reason", "")[:255])
        except ValidationError:
            return await self.order_page(request, "That amount cannot be refunded.", 422)

        async def run(attempt: Attempt) -> tuple[int, dict[str, Any]]:
            return 201, await refunds.create_refund(self.ctx, order_id, body.amount,
                                                    body.reason, attempt)

        # Exactly what POST /v1/orders/{id}/refunds does with an Idempotency-Key.
        fingerprint = request_fingerprint(f"POST /v1/orders/{order_id}/refunds",
                                          body.model_dump())
        status, answer = await run_idempotent(self.ctx, self._api_key(), key, fingerprint, run)
        if status >= 400:
            return await self.order_page(request, answer["error"]["message"], status)
        return self.redirect(request, f"/orders/{order_id}", notice="refund")

    def _api_key(self) -> str:
        key = self.ctx.settings.api_key
        return key.get_secret_value() if key else ""

    async def close(self, request: Request, form: dict[str, str]) -> Response:
        order_id = request.path_params["order_id"]
        try:
            await orders.close_order(self.ctx, order_id)
        except MinigateError as exc:
            return await self.order_page(request, exc.message, exc.status)
        return self.redirect(request, f"/orders/{order_id}", notice="closed")

    async def redeliver(self, request: Request, form: dict[str, str]) -> Response:
        from minigate.jobs.delivery import redeliver

        try:
            event = await redeliver(self.ctx, request.path_params["event_id"])
        except MinigateError as exc:
            return self.refused(request, exc.message, exc.status)
        if event is None:
            return self.refused(request, "No such webhook event.", 404)
        if form.get("back") == "order" and event.get("order_id"):
            return self.redirect(request, f"/orders/{event['order_id']}", notice="redelivered")
        return self.redirect(request, "/events", notice="redelivered")

    async def create_test_order(self, request: Request, form: dict[str, str]) -> Response:
        """Sandbox: an order made with the service's own create (as ``POST /v1/orders``)."""
        if not self.sandbox:
            return self.refused(request, "Test orders exist only in sandbox mode.", 404)
        try:
            cmd = orders.NewOrder(
                merchant_reference=form.get("reference", "")[:64] or "dash-"
                + secrets.token_hex(4),
                amount=Money.parse(form.get("amount", ""), form.get("currency", "")[:3]),
                description=form.get("description", "")[:127] or "Dashboard test order",
                channel=Channel(form.get("channel", "wechat")),
                provider=form.get("provider") or None)
            created = await orders.create_order(self.ctx, cmd)
        except (MinigateError, MoneyError, ValueError) as exc:
            message = exc.message if isinstance(exc, MinigateError) else str(exc)
            return self.render(request, "sandbox.html", 422, error=message,
                               providers=sorted(self.ctx.providers), form=form)
        self.sandbox_tokens[created["id"]] = created["client_token"]
        while len(self.sandbox_tokens) > 1000:
            self.sandbox_tokens.popitem(last=False)
        return self.redirect(request, f"/orders/{created['id']}", notice="created")

    async def pay_as_shopper(self, request: Request, form: dict[str, str]) -> Response:
        """Sandbox: what the mini program and the shopper's phone do, in the wallet."""
        from minigate.sandbox.world import RequestPayment, TradePay, WalletLogin

        world = self.runtime.sandbox
        order_id = request.path_params["order_id"]
        if world is None:
            return self.refused(request, "The shopper's wallet exists only in sandbox mode.",
                                404)
        token = self.sandbox_tokens.get(order_id) or form.get("client_token", "")[:128]
        outcome = form.get("outcome", "success")
        outcome = outcome if outcome in ("success", "cancel", "fail") else "success"
        try:
            order = await orders.get_order(self.ctx, order_id)
            code = None
            if order["channel"] == "wechat":
                code = (await world.wallet_login(WalletLogin(user="dashboard-shopper")))["code"]
            params = await payments.pay(self.ctx, order_id, token, code)
        except MinigateError as exc:
            return await self.order_page(request, exc.message, exc.status)
        if order["channel"] == "wechat":
            answer = await world.request_payment(
                RequestPayment.model_validate({**params["wechat"], "outcome": outcome}))
            ok = answer.get("errMsg") == "requestPayment:ok"
        else:
            answer = await world.trade_pay(TradePay.model_validate({**params["alipay"],
                                                                    "outcome": outcome}))
            ok = answer.get("resultCode") == "9000"
        if not ok:
            return await self.order_page(request, f"The wallet answered: {answer}", 200)
        return self.redirect(request, f"/orders/{order_id}", notice="paid")


def _dt(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def create_dashboard(runtime: Runtime) -> Starlette:
    d = Dashboard(runtime)
    routes = [
        Route("/", d.page(d.overview), name="overview"),
        Route("/login", d.login_page, methods=["GET"]),
        Route("/login", d.login, methods=["POST"]),
        Route("/logout", d.action(d.logout), methods=["POST"]),
        Route("/orders", d.page(d.orders_page)),
        Route("/orders/{order_id}", d.page(d.order_page)),
        Route("/orders/{order_id}/refund", d.action(d.refund_confirm), methods=["POST"]),
        Route("/orders/{order_id}/refund/confirm", d.action(d.refund), methods=["POST"]),
        Route("/orders/{order_id}/close", d.action(d.close), methods=["POST"]),
        Route("/orders/{order_id}/pay", d.action(d.pay_as_shopper), methods=["POST"]),
        Route("/events", d.page(d.events_page)),
        Route("/events/{event_id}/redeliver", d.action(d.redeliver), methods=["POST"]),
        Route("/sandbox", d.page(d.sandbox_page)),
        Route("/sandbox/orders", d.action(d.create_test_order), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.dashboard = d
    return app

