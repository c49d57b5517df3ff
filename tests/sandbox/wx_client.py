"""A small WeChat Pay client for simulator tests: our own signing code, the sandbox world
in-process, and a notification receiver behind an in-process network (no sockets)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from minigate.clock import FrozenClock
from minigate.providers.wechatpay import v2sign, v3sign
from minigate.providers.wechatpay.v3_messages import V3Account, signed_request
from minigate.providers.wechatpay.xml import parse_xml, to_xml
from minigate.sandbox import credentials as cred
from minigate.sandbox.keystore import SandboxCredentials, ephemeral_credentials
from minigate.sandbox.world import SandboxWorld

SANDBOX = "http://sandbox.test"
RECEIVER = "http://receiver.test"
WX = f"{SANDBOX}/sandbox/wechatpay"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WxSim:
    world: SandboxWorld
    http: httpx.AsyncClient
    creds: SandboxCredentials
    clock: FrozenClock
    received: list[Received] = field(default_factory=list)

    # -- the shopper -----------------------------------------------------------------------
    async def openid(self, user: str = "amy") -> str:
        code = (await self.http.post(f"{SANDBOX}/sandbox/wallet/login",
                                     json={"user": user})).json()["code"]
        r = await self.http.get(f"{SANDBOX}/sandbox/wechat-login/sns/jscode2session", params={
            "appid": cred.MINI_APP_ID, "secret": self.creds.mini_app_secret, "js_code": code,
            "grant_type": "authorization_code"})
        return str(r.json()["openid"])

    async def pay(self, params: dict[str, str]) -> str:
        r = await self.http.post(f"{SANDBOX}/sandbox/wallet/requestPayment", json=params)
        return str(r.json()["errMsg"])

    # -- API v3 ----------------------------------------------------------------------------
    @property
    def account(self) -> V3Account:
        return V3Account(cred.WECHATPAY_MCHID, cred.MINI_APP_ID, self.creds.wechatpay_apiv3_key,
                         self.creds.wechat.merchant_key, self.creds.wechat.merchant_serial, WX)

    async def v3(self, method: str, path: str, data: dict[str, Any] | None = None
                 ) -> httpx.Response:
        body = json.dumps(data).encode() if data is not None else b""
        req = signed_request(self.account, method, path, body,
                             int(self.clock.now().timestamp()), secrets.token_hex(8))
        return await self.http.request(req.method, req.url, content=req.body,
                                       headers=dict(req.headers))

    def v3_verified(self, response: httpx.Response) -> None:
        ring = v3sign.KeyRing()
        ring.add(self.creds.wechat.platform_serial,
                 self.creds.wechat.platform_key.public_key())
        ring.add(self.creds.wechat.public_key_id, self.creds.wechat.public_key.public_key())
        v3sign.verify_signed({k.lower(): v for k, v in response.headers.items()},
                             response.content, ring, int(self.clock.now().timestamp()))

    async def v3_order(self, out_trade_no: str, total: int = 500, attach: str = "") -> str:
        data: dict[str, Any] = {
            "appid": cred.MINI_APP_ID, "mchid": cred.WECHATPAY_MCHID, "description": "tea",
            "out_trade_no": out_trade_no, "notify_url": f"{RECEIVER}/v3",
            "amount": {"total": total, "currency": "CNY"},
            "payer": {"openid": await self.openid()}}
        if attach:
            data["attach"] = attach
        r = await self.v3("POST", "/v3/pay/transactions/jsapi", data)
        assert r.status_code == 200, r.text
        return str(r.json()["prepay_id"])

    def v3_pay_params(self, prepay_id: str) -> dict[str, str]:
        ts, nonce, package = str(int(time.time())), secrets.token_hex(8), f"prepay_id={prepay_id}"
        sign = v3sign.rsa_sign(self.creds.wechat.merchant_key,
                               v3sign.pay_sign_message(cred.MINI_APP_ID, ts, nonce, package))
        return {"appId": cred.MINI_APP_ID, "timeStamp": ts, "nonceStr": nonce,
                "package": package, "signType": "RSA", "paySign": sign}

    def v3_resources(self, event_type: str) -> list[dict[str, Any]]:
        out = []
        for note in self.received:
            if note.path != "/v3":
                continue
            envelope = json.loads(note.body)
            if envelope["event_type"] != event_type:
                continue
            res = envelope["resource"]
            plain = v3sign.aes_gcm_decrypt(self.creds.wechatpay_apiv3_key, res["nonce"],
                                           res["associated_data"], res["ciphertext"])
            out.append(json.loads(plain))
        return out

    # -- API v2 ----------------------------------------------------------------------------
    async def v2(self, path: str, fields: dict[str, str], *,
                 url: str = WX) -> dict[str, str]:
        params = {"appid": cred.MINI_APP_ID, "mch_id": cred.WECHATPAY_MCHID,
                  "nonce_str": secrets.token_hex(8), **fields}
        params["sign"] = v2sign.sign(params, self.creds.wechatpay_apiv2_key)
        r = await self.http.post(url + path, content=to_xml(params))
        answer = parse_xml(r.content)
        if answer.get("return_code") == "SUCCESS":
            assert v2sign.verify(answer, self.creds.wechatpay_apiv2_key), answer
        return answer

    async def v2_order(self, out_trade_no: str, total: int = 500, attach: str = "") -> str:
        fields = {"body": "tea", "out_trade_no": out_trade_no, "total_fee": str(total),
                  "spbill_create_ip": "127.0.0.1", "notify_url": f"{RECEIVER}/v2",
                  "trade_type": "JSAPI", "openid": await self.openid()}
        if attach:
            fields["attach"] = attach
        answer = await self.v2("/pay/unifiedorder", fields)
        assert answer["result_code"] == "SUCCESS", answer
        return answer["prepay_id"]

    def v2_pay_params(self, prepay_id: str) -> dict[str, str]:
        params = {"appId": cred.MINI_APP_ID, "timeStamp": str(int(time.time())),
                  "nonceStr": secrets.token_hex(8), "package": f"prepay_id={prepay_id}",
                  "signType": "MD5"}
        params["paySign"] = v2sign.sign(params, self.creds.wechatpay_apiv2_key)
        return params

    def v2_notes(self) -> list[dict[str, str]]:
        return [parse_xml(n.body) for n in self.received if n.path == "/v2"]

    async def settle(self) -> None:
        await self.world.notifier.drain(5)


def _receiver(received: list[Received]) -> FastAPI:
    app = FastAPI()

    @app.post("/{kind}")
    async def take(kind: str, request: Request) -> Response:
        received.append(Received(f"/{kind}", dict(request.headers), await request.body()))
        if kind == "v2":
            return Response(to_xml({"return_code": "SUCCESS", "return_msg": "OK"}),
                            media_type="text/xml")
        return Response(status_code=204)

    return app


async def start_sim(creds: SandboxCredentials | None = None,
                    provider_at_root: str | None = None) -> tuple[WxSim, FastAPI]:
    """The world, its app and a client; the world's notifications reach the receiver."""
    from minigate.sandbox.server import create_sandbox_app

    creds = creds or ephemeral_credentials()
    received: list[Received] = []
    clock = FrozenClock(datetime.now(UTC))
    receiver = httpx.AsyncClient(transport=httpx.ASGITransport(app=_receiver(received)))
    app = create_sandbox_app(0.001, creds, provider_at_root, clock=clock, http=receiver)
    world: SandboxWorld = app.state.world
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return WxSim(world, http, creds, clock, received), app
