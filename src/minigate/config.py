"""One typed settings object, built once at start and passed down.

Sources, later ones winning: defaults < TOML file (``--config``) < ``MINIGATE_*`` environment
variables (nested with ``__``, e.g. ``MINIGATE_LATIPAY__API_KEY``) < explicit overrides.
Secrets are :class:`pydantic.SecretStr`: they print as ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


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
    log_level: str = "INFO"
    #: One log line per HTTP request (uvicorn's access log). Off by default: a reverse proxy
    #: usually keeps that log, and on the notification path it costs about a tenth of the CPU.
    access_log: bool = False
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

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: Any) -> Any:
        return None if value in ("", None) else value

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

    @property
    def sandbox_mode(self) -> bool:
        if self.mode == "auto":
            return not self.any_provider_configured()
        return self.mode == "sandbox"


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from an optional TOML file, the environment and overrides."""
    if config_path is not None and not Path(config_path).is_file():
        raise FileNotFoundError(f"config file not found: {config_path}")

    class _FileSettings(Settings):
        toml_file = Path(config_path) if config_path else None

    built = _FileSettings(**overrides)
    return Settings.model_validate(built.model_dump())
