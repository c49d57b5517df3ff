"""``minigate sandbox credentials``: the keys directory as a minigate TOML block and as
environment variables for other tools (SDKs, test suites in other languages).

Both point at a standalone ``minigate sandbox`` at ``base`` (its ``/sandbox/<provider>``
mounts); PEMs are given as paths into the keys directory, never inline.
"""

from __future__ import annotations

import json
import shlex

from minigate.sandbox import credentials as cred
from minigate.sandbox import keystore
from minigate.sandbox.keystore import SandboxCredentials


def _paths(c: SandboxCredentials) -> dict[str, str]:
    def path(name: str) -> str:
        found = c.file(name)
        return str(found) if found is not None else ""

    platform = c.platform_cert_file
    return {
        "private_key": path(keystore.MERCHANT_KEY), "merchant_cert": path(keystore.MERCHANT_CERT),
        "public_key": path(keystore.WECHATPAY_PUBLIC_KEY),
        "platform_cert_dir": path(keystore.PLATFORM_CERTS),
        "platform_cert": str(platform) if platform is not None else "",
        "ca": path(keystore.SANDBOX_CA),
    }


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string for these values


def as_toml(c: SandboxCredentials, base: str) -> str:
    """A minigate configuration block with every provider pointed at the sandbox."""
    base = base.rstrip("/")
    p = _paths(c)
    wx = f"{base}/sandbox/wechatpay"
    tables: dict[str, dict[str, object]] = {
        "wechat_login": {"appid": cred.MINI_APP_ID, "secret": c.mini_app_secret,
                         "base_url": f"{base}/sandbox/wechat-login"},
        "wechatpay": {"api_version": "v3", "mchid": cred.WECHATPAY_MCHID,
                      "appid": cred.MINI_APP_ID, "base_url": wx,
                      "apiv3_key": c.wechatpay_apiv3_key, "private_key_path": p["private_key"],
                      "merchant_serial": c.wechat.merchant_serial,
                      "public_key_id": c.wechat.public_key_id,
                      "public_key_path": p["public_key"], "platform_certificates": True},
        "wechatpay_v2": {"api_version": "v2", "mchid": cred.WECHATPAY_MCHID,
                         "appid": cred.MINI_APP_ID, "base_url": wx,
                         "apiv2_key": c.wechatpay_apiv2_key,
                         "client_cert_path": p["merchant_cert"],
                         "client_key_path": p["private_key"]},
        "latipay": {"user_id": cred.LATIPAY_USER_ID, "wallet_id": cred.LATIPAY_WALLET_ID,
                    "api_key": c.latipay_api_key, "base_url": f"{base}/sandbox/latipay",
                    "app_id": cred.MINI_APP_ID, "currency": cred.LATIPAY_CURRENCY},
        "qfpay": {"app_code": cred.QFPAY_APP_CODE, "client_key": c.qfpay_client_key,
                  "base_url": f"{base}/sandbox/qfpay"},
        "cbtis": {"client_id": cred.CBTIS_CLIENT_ID, "api_key": c.cbtis_api_key,
                  "webhook_secret": c.cbtis_webhook_secret, "base_url": f"{base}/sandbox/cbtis",
                  "sub_appid": cred.MINI_APP_ID},
    }
    lines = [f"# minigate sandbox test credentials ({c.directory}): they open only the "
             f"simulators at {base}"]
    for table, values in tables.items():
        lines.append(f"\n[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v != ""]
    return "\n".join(lines) + "\n"


def as_env(c: SandboxCredentials, base: str) -> dict[str, str]:
    """Plain variables for other tools (names are ours; values as the SDKs take them)."""
    base = base.rstrip("/")
    p = _paths(c)
    return {
        "SANDBOX_BASE_URL": base,
        "WECHAT_APPID": cred.MINI_APP_ID, "WECHAT_APPSECRET": c.mini_app_secret,
        "WECHAT_LOGIN_BASE_URL": f"{base}/sandbox/wechat-login",
        "WECHATPAY_BASE_URL": f"{base}/sandbox/wechatpay",
        "WECHATPAY_MCHID": cred.WECHATPAY_MCHID,
        "WECHATPAY_APIV3_KEY": c.wechatpay_apiv3_key,
        "WECHATPAY_CERT_SERIAL_NO": c.wechat.merchant_serial,
        "WECHATPAY_PRIVATE_KEY_PATH": p["private_key"],
        "WECHATPAY_CERT_PATH": p["merchant_cert"],
        "WECHATPAY_PUBLIC_KEY_ID": c.wechat.public_key_id,
        "WECHATPAY_PUBLIC_KEY_PATH": p["public_key"],
        "WECHATPAY_PLATFORM_CERT_DIR": p["platform_cert_dir"],
        "WECHATPAY_PLATFORM_CERT_SERIAL": c.wechat.platform_serial,
        "WECHATPAY_APIV2_KEY": c.wechatpay_apiv2_key,
        "SANDBOX_CA_CERT_PATH": p["ca"],
        "LATIPAY_BASE_URL": f"{base}/sandbox/latipay", "LATIPAY_USER_ID": cred.LATIPAY_USER_ID,
        "LATIPAY_WALLET_ID": cred.LATIPAY_WALLET_ID, "LATIPAY_API_KEY": c.latipay_api_key,
        "QFPAY_BASE_URL": f"{base}/sandbox/qfpay", "QFPAY_APP_CODE": cred.QFPAY_APP_CODE,
        "QFPAY_CLIENT_KEY": c.qfpay_client_key,
        "CBTIS_BASE_URL": f"{base}/sandbox/cbtis", "CBTIS_CLIENT_ID": cred.CBTIS_CLIENT_ID,
        "CBTIS_API_KEY": c.cbtis_api_key, "CBTIS_WEBHOOK_SECRET": c.cbtis_webhook_secret,
    }


def env_lines(c: SandboxCredentials, base: str) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in as_env(c, base).items()) + "\n"
