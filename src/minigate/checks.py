"""``minigate check``: the configuration as production would use it, as one table.

Each row is a setting's source or a check, with ``OK``, ``WARN`` (works, but look at it),
``FAIL`` (would fail in production: the command exits 1) or ``INFO``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy.engine import make_url

from minigate.config import SECRET_NAMES, Settings, masked_url, sources
from minigate.preflight import StartRefused, connect, schema_state, start_problems

#: Warn about a certificate this long before it expires.
EXPIRY_WARNING = timedelta(days=30)
RESOLVE_TIMEOUT = 3.0

PROVIDER_BLOCKS = {"latipay": "latipay", "qfpay": "qfpay", "cbtis": "cbtis",
                   "wechatpay": "wechatpay", "wechatpay_v2": "wechatpay-v2"}


@dataclass(frozen=True)
class Row:
    item: str
    status: str  # OK | WARN | FAIL | INFO
    detail: str


def render(rows: list[Row]) -> str:
    width = max(len(r.item) for r in rows)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{r.item:<{width}}  {r.status:<6}  {r.detail}" for r in rows]
    failed = sum(r.status == "FAIL" for r in rows)
    warned = sum(r.status == "WARN" for r in rows)
    lines.append("")
    lines.append(f"{failed} failing, {warned} warning" + (
        ": this configuration would fail in production" if failed else ""))
    return "\n".join(lines)


async def run_checks(settings: Settings, config_path: Path | None) -> list[Row]:
    rows = _source_rows(settings, config_path)
    live = not settings.sandbox_mode
    rows.append(Row("mode", "INFO", f"{'live' if live else 'sandbox'} (mode = {settings.mode!r})"))
    rows += [Row("start", "FAIL", problem) for problem in start_problems(settings)]
    rows += await _database_rows(settings)
    if live:
        rows += await _provider_rows(settings)
        rows.append(_public_url_row(settings))
        rows.append(Row("metrics_token", "OK" if settings.metrics_token else "WARN",
                        "set: /metrics needs it" if settings.metrics_token else
                        "not set: /metrics answers 403 in live mode"))
    else:
        rows.append(Row("providers", "INFO", "every provider is simulated (sandbox mode)"))
    rows += await _webhook_rows(settings)
    return rows


def _shown(key: str, settings: Settings) -> str:
    """A setting's value for the table: secrets masked, the database URL's password too."""
    leaf = key.rsplit(".", 1)[-1]
    if key == "database_url":
        return masked_url(settings.database_url)
    if leaf in SECRET_NAMES:
        return "********"
    value: object = settings
    for part in key.split("."):
        value = getattr(value, part, None) if not isinstance(value, dict) else value.get(part)
    return repr(value) if value is not None else "?"


def _source_rows(settings: Settings, config_path: Path | None) -> list[Row]:
    found = sources(config_path)
    rows = [Row(f"setting {key}", "INFO", f"{_shown(key, settings)} (from {where})")
            for key, where in sorted(found.items())]
    rows.append(Row("other settings", "INFO", "defaults"))
    return rows


async def _database_rows(settings: Settings) -> list[Row]:
    url = settings.database_url
    missing = _missing_sqlite_file(settings)
    if missing is not None:
        return [missing]
    try:
        engine = await connect(url)
    except StartRefused as exc:
        return [Row("database", "FAIL", str(exc))]
    try:
        state = await schema_state(engine)
    finally:
        await engine.dispose()
    rows = [Row("database", "OK", f"{masked_url(url)} answers")]
    have = ", ".join(state.current) or "empty"
    if state.at_head:
        rows.append(Row("schema", "OK", f"at head {have}"))
    elif settings.sandbox_mode:
        rows.append(Row("schema", "OK", f"at {have}; sandbox mode migrates it at start"))
    else:
        rows.append(Row("schema", "FAIL", f"at {have}, head is {', '.join(state.head)}: "
                                          "run minigate migrate"))
    return rows


def _missing_sqlite_file(settings: Settings) -> Row | None:
    """For a SQLite file that does not exist yet: a row saying what start will do (the
    check itself creates no file)."""
    parsed = make_url(settings.database_url)
    if not (parsed.drivername.startswith("sqlite") and parsed.database) or \
            Path(parsed.database).exists():
        return None
    directory = Path(parsed.database).parent
    if not directory.is_dir():
        return Row("database", "FAIL", f"the directory of {parsed.database} does not exist")
    if settings.sandbox_mode:
        return Row("database", "OK", f"{parsed.database} will be created and migrated at "
                                     "start (sandbox mode)")
    return Row("database", "FAIL", f"{parsed.database} does not exist: run minigate migrate")


async def _provider_rows(settings: Settings) -> list[Row]:
    rows: list[Row] = []
    for block, provider in PROVIDER_BLOCKS.items():
        section = getattr(settings, block)
        if not section.configured:
            rows.append(Row(f"provider {provider}", "INFO", "not configured"))
            continue
        rows.append(Row(f"provider {provider}", "OK", "credentials present"))
        if block.startswith("wechatpay"):
            rows += _wechatpay_key_rows(provider, block, settings)
        if block == "cbtis" and not section.webhook_secret.get_secret_value():
            rows.append(Row(f"provider {provider}", "WARN",
                            "no webhook_secret: every CBTIS webhook is refused; payments "
                            "settle by query only"))
        rows.append(await _resolves(f"provider {provider} base_url", section.base_url))
    if settings.wechat_login.appid:
        rows.append(Row("wechat_login", "OK", f"appid {settings.wechat_login.appid}"))
        rows.append(await _resolves("wechat_login base_url", settings.wechat_login.base_url))
    else:
        rows.append(Row("wechat_login", "WARN", "no appid/secret: WeChat mini program logins "
                                                "(jscode2session) are not possible"))
    return rows


def _wechatpay_key_rows(provider: str, block: str, settings: Settings) -> list[Row]:
    from minigate.providers.wechatpay import keys

    cfg = getattr(settings, block)
    rows: list[Row] = []
    item = f"provider {provider} keys"
    try:
        if cfg.api_version == "v3":
            keys.load_private_key(keys.pem_text(cfg.private_key.get_secret_value(),
                                                cfg.private_key_path))
            if cfg.public_key_id:
                keys.load_public_key(keys.pem_text(cfg.public_key, cfg.public_key_path))
        rows.append(Row(item, "OK", "key material parses"))
    except (ValueError, OSError) as exc:
        rows.append(Row(item, "FAIL", f"{type(exc).__name__}: {str(exc)[:160]}"))
    if cfg.client_cert_path:
        rows.append(_certificate_row(f"provider {provider} client certificate",
                                     cfg.client_cert_path, cfg.client_key_path))
    return rows


def _certificate_row(item: str, cert_path: str, key_path: str,
                     now: datetime | None = None) -> Row:
    now = now or datetime.now(UTC)
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        context = ssl.create_default_context()
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ValueError, ssl.SSLError) as exc:
        return Row(item, "FAIL", f"{cert_path} / {key_path} do not load: {type(exc).__name__}")
    expires = cert.not_valid_after_utc
    when = expires.strftime("%Y-%m-%d")
    if expires <= now:
        return Row(item, "FAIL", f"expired on {when}")
    if expires - now < EXPIRY_WARNING:
        return Row(item, "WARN", f"expires on {when}, in {(expires - now).days} days")
    return Row(item, "OK", f"expires on {when}")


async def _resolves(item: str, url: str) -> Row:
    host = urlsplit(url).hostname
    if not host:
        return Row(item, "FAIL", f"{url!r} is not an absolute URL")
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            await loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return Row(item, "FAIL", f"{host} does not resolve from here")
    return Row(item, "OK", f"{host} resolves")


def _public_url_row(settings: Settings) -> Row:
    url = settings.public_url
    if not url.startswith("https://"):
        return Row("public_url", "FAIL", f"{url} is not https: providers send notifications "
                                         "only to https URLs in production")
    return Row("public_url", "OK", url)


async def _webhook_rows(settings: Settings) -> list[Row]:
    from minigate.jobs.destination import UnsafeDestination, check_url
    from minigate.jobs.runner import webhook_loopback_allowed

    if not settings.webhook_url:
        return [Row("webhook_url", "INFO", "not set: merchant events are only listed by "
                                           "GET /v1/events")]
    try:
        check_url(settings.webhook_url, require_https=not settings.sandbox_mode,
                  allow_loopback=webhook_loopback_allowed(settings))
    except UnsafeDestination as exc:
        return [Row("webhook_url", "FAIL", exc.message)]
    rows = [Row("webhook_url", "OK", settings.webhook_url)]
    if not settings.webhook_secrets:
        rows.append(Row("webhook_secrets", "WARN" if settings.sandbox_mode else "FAIL",
                        "none: webhooks go unsigned and the merchant cannot verify them"))
    return rows
