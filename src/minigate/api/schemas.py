"""Request bodies. Amounts are strings (``"12.30"``): a JSON number is refused, never rounded."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from minigate.providers.base import Channel


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class CreateOrder(_Strict):
    merchant_reference: str = Field(min_length=1, max_length=64)
    amount: str = Field(strict=True, min_length=1, max_length=24,
                        description='Decimal string in the currency\'s units, e.g. "12.30"')
    currency: str = Field(strict=True, pattern=r"^[A-Z]{3}$")
    description: str = Field(min_length=1, max_length=127)
    channel: Channel
    provider: str | None = Field(default=None, max_length=32)
    expires_in: int | None = Field(default=None, strict=True)
    metadata: dict[str, Any] = Field(default_factory=dict)


class CreateRefund(_Strict):
    amount: str | None = Field(default=None, strict=True, max_length=24)
    reason: str = Field(default="", max_length=255)


class ClientPay(_Strict):
    client_token: str = Field(min_length=1, max_length=128)
    login_code: str | None = Field(default=None, max_length=128)
