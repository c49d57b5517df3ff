"""One typed settings object, built once at start and passed down.

Sources, later ones winning: defaults < TOML file (``--config``) < ``MINIGATE_*`` environment
variables (nested with ``__``, e.g. ``MINIGATE_LATIPAY__API_KEY``) < explicit overrides.
Secrets are :class:`pydantic.SecretStr`: they print as ``**********``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: ``gc_threshold``'s default; the bench's baseline takes the same (``bench/baseline.py``).
GC_THRESHOLD = 7000


class WechatLoginSettings(BaseModel):
    """``jscode2session``: the mini program's AppID and AppSecret."""

    appid: str = ""
    secret: SecretStr = SecretStr("")
    base_url: str = "https://api.weixin.qq.com"


class LatipaySettings(BaseModel):
    user_id: str = ""
    wallet_id: str = ""
    api_key: SecretStr = SecretStr("")
    base_url: str = "https://api.latipay.net"
    #: The WeChat mini program AppID sent as ``app_id`` to ``/v2/miniapppay``.
    app_id: str = ""
    #: The wallet's currency. Latipay's create calls carry no currency: the wallet's is
    #: charged, so orders in any other currency are refused before a shopper can pay.
    currency: str = "NZD"

    @property
    def configured(self) -> bool:
        return bool(self.user_id and self.wallet_id and self.api_key.get_secret_value())


class QfpaySettings(BaseModel):
    """QFPay (qfapi): ``app_code`` + ``client_key``; ``mchid`` only for agent accounts."""

    app_code: str = ""
    client_key: SecretStr = SecretStr("")
    base_url: str = "https://openapi-hk.qfapi.com"
    #: Sent (and signed) only when QFPay assigned one: agents must, direct merchants must not.
    mchid: str = ""
    #: ``X-QF-SIGNTYPE``: QFPay's default MD5, or SHA256.
    sign_type: Literal["MD5", "SHA256"] = "MD5"

    @property
    def configured(self) -> bool:
        return bool(self.app_code and self.client_key.get_secret_value())


class CbtisSettings(BaseModel):
    """CBTIS payment intents. Auth and webhooks are modelled on Airwallex (see
    docs/providers/cbtis.md): a login call with client id + API key gives a bearer token."""

    client_id: str = ""
    api_key: SecretStr = SecretStr("")
    #: Verifies webhook ``x-signature``; without it every webhook is refused (the reconciler
    #: still settles payments by query).
    webhook_secret: SecretStr = SecretStr("")
    #: Not published by CBTIS: must be set explicitly.
    base_url: str = ""
    #: The mini program AppID sent as ``sub_appid``; defaults to ``wechat_login.appid``.
    sub_appid: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.api_key.get_secret_value() and self.base_url)


class WechatpaySettings(BaseModel):
    """WeChat Pay direct (one merchant account; API v3 by default, or v2).

    Secrets (API keys, the private key PEM) are :class:`SecretStr`. PEMs may be given
    inline or as file paths (``*_path``); inline wins.
    """

    api_version: Literal["v3", "v2"] = "v3"
    mchid: str = ""
    #: The mini program's AppID, bound to ``mchid`` (defaults to ``wechat_login.appid``).
    appid: str = ""
    base_url: str = "https://api.mch.weixin.qq.com"
    #: Seconds after creation before WeChat accepts a close (its rule: 5 minutes).
    min_close_age: int = Field(default=300, ge=0)
    # -- API v3 --
    apiv3_key: SecretStr = SecretStr("")
    #: The merchant API private key (``apiclient_key.pem``), inline PEM or path.
    private_key: SecretStr = SecretStr("")
    private_key_path: str = ""
    #: Serial of the merchant API certificate (sent as ``serial_no`` in Authorization).
    merchant_serial: str = ""
    #: WeChat Pay public key mode: its ID (``PUB_KEY_ID_…``) and PEM (inline or path).
    public_key_id: str = ""
    public_key: str = ""
    public_key_path: str = ""
    #: Platform certificate mode: fetch (and cache) ``/v3/certificates``. Both modes may be
    #: on at once while WeChat migrates an account from certificates to the public key.
    platform_certificates: bool = True
    # -- API v2 --
    apiv2_key: SecretStr = SecretStr("")
    sign_type: Literal["MD5", "HMAC-SHA256"] = "MD5"
    #: Client certificate for ``/secapi/pay/refund`` (mutual TLS), PEM file paths.
    client_cert_path: str = ""
    client_key_path: str = ""

    @property
    def configured(self) -> bool:
        if not self.mchid:
            return False
        if self.api_version == "v2":
            return bool(self.apiv2_key.get_secret_value())
        has_key = bool(self.private_key.get_secret_value() or self.private_key_path)
        can_verify = bool(self.public_key_id and (self.public_key or self.public_key_path)) or \
            self.platform_certificates
        return bool(self.apiv3_key.get_secret_value() and has_key and self.merchant_serial
                    and can_verify)


class SandboxSettings(BaseModel):
    """Knobs of the built-in provider simulators."""

    #: Multiplies every provider retry interval (1.0 = real time; 0.001 = 30 s -> 30 ms).
    time_scale: float = 1.0
    #: Let merchant webhooks go to loopback addresses (sandbox only).
    allow_loopback_webhooks: bool = True
    #: Where the simulated merchants' keys and certificates are kept (created on first
    #: start). Empty: generated per process, nothing written. ``minigate serve`` uses
    #: ``./minigate-data/sandbox-keys`` when this is empty.
    keys_dir: str = ""
    #: Hours a simulated payment (order, transaction) is kept after its last activity
    #: (made, paid, refunded, closed), a refund after it was made; then it is forgotten
    #: like one never made. 0: kept until restart.
    keep_hours: float = Field(default=24.0, ge=0, le=24 * 366)
    #: At most this many of each kind of simulated record (the least recently active go
    #: first). 0: no limit.
    max_records: int = Field(default=100_000, ge=0)


class HttpSettings(BaseModel):
    """Limits against hostile or broken HTTP clients (``minigate.http_limits``)."""

    #: Largest request body on the API routes, in bytes (an order with 4 KiB of metadata is
    #: about 5 KiB); refused with 413 while streaming, before authentication. Provider
    #: notifications have their own 64 KiB.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Seconds a client has to send its request line and headers (then: connection closed).
    header_timeout: float = Field(default=10.0, gt=0, le=300)
    #: Largest request line + headers, in bytes (then: connection closed).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    #: Seconds a client has to send its whole body (then: 408 and connection closed).
    body_timeout: float = Field(default=30.0, gt=0, le=600)
    #: Seconds an idle kept-alive connection stays open (uvicorn ``timeout_keep_alive``).
    keep_alive_timeout: int = Field(default=5, ge=1, le=300)
    #: Open connections + running requests above which uvicorn answers 503 at once
    #: (uvicorn ``limit_concurrency``).
    max_concurrency: int = Field(default=1000, ge=1, le=100_000)
    #: Pending connections the kernel queues before accepting (uvicorn ``backlog``).
    backlog: int = Field(default=2048, ge=16, le=65535)


class DashboardSettings(BaseModel):
    """The browser dashboard at ``/dashboard``."""

    enabled: bool = True
    #: Sign-in names and their argon2 password hashes (``minigate dashboard-user NAME``).
    users: dict[str, str] = Field(default_factory=dict)
    #: Signs session cookies. Empty: a random key per start (sessions end on restart, and
    #: every process behind one address needs the same key, so set it there).
    secret_key: SecretStr = SecretStr("")
    #: How long a sign-in lasts.
    session_minutes: int = Field(default=480, ge=5, le=7 * 24 * 60)
    #: The wait after a failed sign-in; it doubles with each further failure of that name
    #: or address, up to 16 times this.
    signin_delay_seconds: float = Field(default=1.0, ge=0.0, le=10.0)


class Settings(BaseSettings):
    """Everything minigate reads from its configuration."""

    model_config = SettingsConfigDict(
        env_prefix="MINIGATE_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = "sqlite+aiosqlite:///./minigate.db"
    #: PostgreSQL connections one process keeps open (SQLite always uses one). A request
    #: that finds them all busy waits for one (503 after 30 s) rather than opening another:
    #: connections opened and closed under load cost PostgreSQL more than the requests.
    database_pool_size: int = Field(default=10, ge=1, le=200)
    api_key: SecretStr | None = None
    #: The base URL providers use to reach us (``notify_url`` = public_url + /v1/notify/…).
    public_url: str = "http://127.0.0.1:8000"
    #: ``auto``: sandbox when no provider has credentials; ``sandbox``/``live`` force it.
    mode: Literal["auto", "sandbox", "live"] = "auto"
    #: Seconds an order stays payable when the merchant does not say.
    order_ttl_seconds: int = Field(default=1800, ge=60, le=7 * 24 * 3600)
    #: Which provider serves a channel when the order does not name one.
    default_providers: dict[str, str] = Field(
        default_factory=lambda: {"wechat": "latipay", "alipay": "latipay"}
    )
    #: Run the job runner (outbox, reconciliation, expiry) inside the API process.
    run_jobs: bool = True
    webhook_url: str = ""
    #: Newest first; several while rotating, each signs a ``v1=`` entry.
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: One log line per HTTP request (uvicorn's access log). Off by default: a reverse proxy
    #: usually keeps that log, and on the notification path it costs about a tenth of the CPU.
    access_log: bool = False
    #: The garbage collector's first threshold (allocations between young collections),
    #: set once started, after what exists then is frozen out of every collection. Python's
    #: own is 700; at that rate a busy server's full collections, each a pause that walks
    #: every object still alive, come often enough to be its slowest requests. The cost of
    #: a higher one: up to that many more unreachable objects waiting to be freed.
    gc_threshold: int = Field(default=GC_THRESHOLD, ge=100, le=1_000_000)
    #: Seconds between provider queries of a pending payment or refund: the first within a
    #: minute, then backing off; the last interval repeats until the order expires.
    reconcile_schedule: list[int] = Field(
        default_factory=lambda: [20, 40, 60, 120, 300, 600, 1800, 3600], min_length=1
    )
    #: Seconds a worker holds a claimed job; a crashed worker's jobs come back after it.
    #: Keep it well above the slowest provider call (timeouts are 10 s).
    job_lease_seconds: int = Field(default=60, ge=1, le=3600)
    #: What to do when a provider reports a payment for an order already closed:
    #: ``refund`` it automatically, or ``escalate`` (flag it and leave it to a person).
    paid_after_close: Literal["refund", "escalate"] = "refund"
    # -- operations (issue 11): logs and metrics --
    #: ``text`` (one readable line per event) or ``json`` (one JSON object per line).
    log_format: Literal["text", "json"] = "text"
    #: Bearer token for ``/metrics``. In live mode ``/metrics`` answers 403 until it is set;
    #: in sandbox mode it is open.
    metrics_token: SecretStr | None = None

    wechat_login: WechatLoginSettings = Field(default_factory=WechatLoginSettings)
    latipay: LatipaySettings = Field(default_factory=LatipaySettings)
    qfpay: QfpaySettings = Field(default_factory=QfpaySettings)
    cbtis: CbtisSettings = Field(default_factory=CbtisSettings)
    #: Provider ``wechatpay``: API v3 by default (``api_version = "v2"`` for v2).
    wechatpay: WechatpaySettings = Field(default_factory=WechatpaySettings)
    #: Provider ``wechatpay-v2``: a second WeChat Pay account block that always speaks API v2
    #: (orders created under v2 keep their provider id, notify URL and refunds while new
    #: orders go to ``wechatpay`` on v3).
    wechatpay_v2: WechatpaySettings = Field(
        default_factory=lambda: WechatpaySettings(api_version="v2"))
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    #: HTTP limits and timeouts (body size, header/body/keep-alive timeouts, concurrency).
    http: HttpSettings = Field(default_factory=HttpSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    toml_file: ClassVar[Path | None] = None

    @field_validator("api_key", "metrics_token", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)

    def any_provider_configured(self) -> bool:
        return (self.latipay.configured or self.qfpay.configured or self.cbtis.configured
                or self.wechatpay.configured or self.wechatpay_v2.configured)

    def credentials_given(self) -> list[str]:
        """Every provider credential that has a value (``latipay.api_key``, …)."""
        return [f"{block}.{name}" for block, names in CREDENTIALS.items()
                for name in names if _set(getattr(getattr(self, block), name))]

    @property
    def sandbox_mode(self) -> bool:
        # ``auto`` is sandbox only when no credential at all is given: one missing secret
        # must never put the simulated wallet on a public URL.
        if self.mode == "auto":
            return not self.credentials_given()
        return self.mode == "sandbox"


_WECHATPAY_CREDENTIALS = ("mchid", "apiv3_key", "private_key", "private_key_path",
                          "merchant_serial", "public_key_id", "public_key", "public_key_path",
                          "apiv2_key", "client_cert_path", "client_key_path")

#: Per settings block, the fields that are credentials: any of them set means "this is a
#: real account" (so ``mode = "auto"`` is live), and then all its required ones must be set.
CREDENTIALS: dict[str, tuple[str, ...]] = {
    "wechat_login": ("appid", "secret"),
    "latipay": ("user_id", "wallet_id", "api_key"),
    "qfpay": ("app_code", "client_key", "mchid"),
    "cbtis": ("client_id", "api_key", "webhook_secret"),
    "wechatpay": _WECHATPAY_CREDENTIALS,
    "wechatpay_v2": _WECHATPAY_CREDENTIALS,
}

#: ``MINIGATE_*`` variables that are not settings (test, fault-injection and benchmark
#: switches); the unknown-key check leaves them alone. A new one must be added here.
NOT_SETTINGS = ("MINIGATE_REQUIRE_", "MINIGATE_TEST_", "MINIGATE_BENCH_", "MINIGATE_CHAOS_",
                "MINIGATE_CRASH_AT", "MINIGATE_BIN", "MINIGATE_FUZZ_")


class ConfigError(ValueError):
    """A configuration mistake, said in one line that names what to change."""


def _set(value: Any) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def _missing(block: str, section: Any) -> list[str]:
    """The required credentials of a block that has some of them but not all."""
    if block == "wechat_login":
        need = ["appid", "secret"]
    elif block == "latipay":
        need = ["user_id", "wallet_id", "api_key"]
    elif block == "qfpay":
        need = ["app_code", "client_key"]
    elif block == "cbtis":
        need = ["client_id", "api_key", "base_url"]
    elif section.api_version == "v2" or block == "wechatpay_v2":  # that block is always v2
        need = ["mchid", "apiv2_key"]
    else:
        need = ["mchid", "apiv3_key", "merchant_serial"]
    missing = [name for name in need if not _set(getattr(section, name))]
    if block.startswith("wechatpay"):
        if section.api_version == "v3" and block == "wechatpay":
            if not (_set(section.private_key) or section.private_key_path):
                missing.append("private_key (or private_key_path)")
            has_public_key = section.public_key_id and (section.public_key or
                                                         section.public_key_path)
            if not (has_public_key or section.platform_certificates):
                missing.append("public_key_id with public_key (or platform_certificates = true)")
        if bool(section.client_cert_path) != bool(section.client_key_path):
            missing.append("client_key_path" if section.client_cert_path else "client_cert_path")
    return missing


def credential_problems(settings: Settings) -> list[str]:
    """One sentence per settings block that has some credentials but not all."""
    problems = []
    for block, names in CREDENTIALS.items():
        section = getattr(settings, block)
        if not any(_set(getattr(section, name)) for name in names):
            continue
        missing = _missing(block, section)
        if missing:
            problems.append(f"[{block}] has some credentials but is missing "
                            + ", ".join(f"{block}.{m}" for m in missing)
                            + f" (environment: {_env_name(block, missing[0].split()[0])})")
    return problems


def _env_name(*parts: str) -> str:
    return "MINIGATE_" + "__".join(p.upper() for p in parts)


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def _model_of(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The nested settings model of field ``name``, if it is one."""
    annotation = model.model_fields[name].annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
        else None


def unknown_keys_in(values: dict[str, Any], where: str,
                    model: type[BaseModel] = BaseModel, prefix: str = "") -> list[str]:
    """Keys of a TOML table (or overrides) that are no setting, each with the closest one."""
    model = Settings if model is BaseModel else model
    problems = []
    fields = sorted(model.model_fields)
    for key, value in values.items():
        if key not in model.model_fields:
            problems.append(f"unknown setting '{prefix}{key}' in {where}"
                            f"{_closest(key, fields)}")
            continue
        nested = _model_of(model, key)
        if nested is not None and isinstance(value, dict):
            problems += unknown_keys_in(value, where, nested, f"{prefix}{key}.")
    return problems


def unknown_environment(environ: dict[str, str] | None = None) -> list[str]:
    """``MINIGATE_*`` variables that name no setting, each with the closest valid name."""
    problems = []
    env = os.environ if environ is None else environ
    valid = [_env_name(name) for name in Settings.model_fields]
    for name in Settings.model_fields:
        nested = _model_of(Settings, name)
        if nested is not None:
            valid += [_env_name(name, sub) for sub in nested.model_fields]
    for var in sorted(env):
        upper = var.upper()
        if not upper.startswith("MINIGATE_") or upper.startswith(NOT_SETTINGS):
            continue
        parts = upper[len("MINIGATE_"):].lower().split("__")
        top = parts[0]
        if top in Settings.model_fields:
            nested = _model_of(Settings, top)
            if len(parts) == 1:
                continue
            if nested is None:  # a dict setting takes any nested key; others none
                if Settings.model_fields[top].annotation == dict[str, str]:
                    continue
            elif len(parts) == 2 and parts[1] in nested.model_fields:
                continue
        problems.append(f"unknown setting {var}{_closest(upper, valid)}")
    return problems


def database_url_problem(url: str) -> str | None:
    """What is wrong with the form of ``database_url``, with what to write instead."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    example = "sqlite+aiosqlite:///./minigate.db or postgresql+asyncpg://user:password@host/db"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"database_url {masked_url(url)!r} is not a database URL: write {example}"
    driver = parsed.drivername
    if driver in ("postgres", "postgresql") or driver.startswith(("postgresql+", "postgres+")):
        if driver != "postgresql+asyncpg":
            fixed = parsed.set(drivername="postgresql+asyncpg")
            return (f"database_url starts with {driver}:// but minigate talks to PostgreSQL "
                    f"through asyncpg: write {fixed.render_as_string(hide_password=True)}")
        if not parsed.database:
            return "database_url names no database: write postgresql+asyncpg://user:password@host/db"
        return None
    if driver == "sqlite" or driver.startswith("sqlite+"):
        if driver != "sqlite+aiosqlite":
            fixed = parsed.set(drivername="sqlite+aiosqlite")
            return (f"database_url starts with {driver}:// but minigate needs the async "
                    f"driver: write {fixed.render_as_string(hide_password=True)}")
        return None
    return f"database_url uses {driver}://, which minigate does not support: write {example}"


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for banners, errors and logs)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        import re

        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as one line per problem: ``key: what is wrong (got …)``."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
        secret = any(str(p) in SECRET_NAMES for p in error.get("loc", ()))
        got = "" if secret or error.get("type") == "missing" else f" (got {error.get('input')!r})"
        lines.append(f"{where}: {error.get('msg', 'invalid')}{got}")
    return "; ".join(lines)


#: Field names whose values are never shown, not even in an error message.
SECRET_NAMES = frozenset({"api_key", "secret", "client_key", "webhook_secret", "apiv3_key",
                          "private_key", "apiv2_key", "webhook_secrets", "metrics_token",
                          "database_url"})


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from an optional TOML file, the environment and overrides.

    Refuses, with :class:`ConfigError` (one line per mistake, naming what to change):
    unknown keys in the file, the overrides or ``MINIGATE_*`` variables (with the closest
    valid name), a provider block with some credentials but not all, and a database URL
    minigate cannot use. A pydantic ``ValidationError`` reports a value out of range.
    """
    problems: list[str] = []
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {config_path}")
        try:
            table = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path} is not valid TOML: {exc}") from None
        problems += unknown_keys_in(table, str(config_path))
    problems += unknown_keys_in(overrides, "overrides")
    problems += unknown_environment()
    if problems:
        raise ConfigError("; ".join(problems))

    class _FileSettings(Settings):
        toml_file = Path(config_path) if config_path else None

    built = _FileSettings(**overrides)
    settings = Settings.model_validate(built.model_dump())
    problems = credential_problems(settings)
    url_problem = database_url_problem(settings.database_url)
    if url_problem:
        problems.append(url_problem)
    if problems:
        raise ConfigError("; ".join(problems))
    return settings


def sources(config_path: str | Path | None = None,
            environ: dict[str, str] | None = None) -> dict[str, str]:
    """Where each setting that is not at its default came from: ``file`` or ``env``
    (dotted keys, e.g. ``latipay.api_key``); the rest are ``default``."""
    found: dict[str, str] = {}
    if config_path is not None and Path(config_path).is_file():
        def walk(table: dict[str, Any], prefix: str) -> None:
            for key, value in table.items():
                if isinstance(value, dict) and prefix == "" and _model_of(Settings, key):
                    walk(value, f"{key}.")
                else:
                    found[prefix + key] = f"file {config_path}"
        walk(tomllib.loads(Path(config_path).read_text()), "")
    env = os.environ if environ is None else environ
    for var in env:
        upper = var.upper()
        if upper.startswith("MINIGATE_") and not upper.startswith(NOT_SETTINGS):
            found[".".join(upper[len("MINIGATE_"):].lower().split("__"))] = f"env {upper}"
    return found
