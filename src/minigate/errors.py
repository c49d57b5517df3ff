"""minigate's exception tree. Business outcomes (a declined payment) are data, not exceptions.

::

    MinigateError                    base; carries HTTP status, a stable code and a param
    ├── InvalidRequest      400      bad input from a caller; nothing was changed
    ├── AuthenticationError 401      missing or wrong API key / client token
    ├── NotFound            404
    ├── Conflict            409      state does not allow it (e.g. refund on an unpaid order),
    │                                or the same Idempotency-Key is still in flight
    ├── Unprocessable       422      well-formed but refused (Idempotency-Key reused with
    │                                another body, refund above what is refundable)
    ├── RateLimited         429
    └── ProviderError       502      the provider said no, or answered nonsense
        ├── ProviderUnavailable 503  the request was never delivered (connect error):
        │                            safe to retry with the same numbers
        └── ProviderTimeout     502  sent, no answer: the outcome is UNKNOWN until a query

Lower-level errors (httpx, SQLAlchemy, cryptography) are translated at the boundary with
``raise … from``; API routes never see them.
"""

from __future__ import annotations


class MinigateError(Exception):
    """Base class. ``status``/``type``/``code`` map straight onto the API's error shape."""

    status = 500
    type = "api_error"
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param


class InvalidRequest(MinigateError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class AuthenticationError(MinigateError):
    status, type, code = 401, "authentication_error", "unauthorized"


class NotFound(MinigateError):
    status, type, code = 404, "invalid_request_error", "not_found"


class Conflict(MinigateError):
    status, type, code = 409, "invalid_request_error", "conflict"


class Unprocessable(MinigateError):
    status, type, code = 422, "invalid_request_error", "unprocessable"


class RateLimited(MinigateError):
    status, type, code = 429, "rate_limit_error", "rate_limited"


class ProviderError(MinigateError):
    """The provider refused or answered something we cannot use.

    ``provider_code`` keeps the provider's own code (e.g. Latipay ``206``, QFPay ``1108``).
    ``retryable`` says whether the same call with the same numbers may succeed later.
    """

    status, type, code = 502, "provider_error", "provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        provider_code: str | None = None,
        retryable: bool = False,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.provider = provider
        self.provider_code = provider_code
        self.retryable = retryable


class ProviderUnavailable(ProviderError):
    status, code = 503, "provider_unavailable"


class ProviderTimeout(ProviderError):
    status, code = 502, "provider_timeout"


class NotificationRejected(Exception):
    """A provider notification that failed verification (bad signature, stale, malformed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
