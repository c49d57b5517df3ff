"""What ``/openapi.json`` says beyond what FastAPI derives from the routes.

* :func:`errors` lists a route's error statuses, all in the one error shape;
* :data:`LINKS` chain the calls (order → get, pay, status, close, refund; refund → get);
* :func:`finish` runs once on the generated document: it drops FastAPI's default 422
  (minigate answers 400 for a malformed request), adds the provider callback route (a
  plain Starlette route), and narrows ``CreateOrder`` to what *this* deployment accepts:
  for every configured provider the channels it serves and the currencies it charges in,
  each with its amount format, so a request valid by the schema is one minigate accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minigate.api.schemas import ErrorBody, ProviderId, amount_pattern
from minigate.domain.money import CURRENCY_EXPONENTS

#: When each error status is answered (the ``code`` says precisely why).
STATUS_TEXT: dict[int, str] = {
    400: "Malformed or unacceptable request (`invalid_field`, `missing_field`, "
         "`invalid_amount`, `currency_not_supported`, …); nothing was changed",
    401: "Missing or wrong credentials: the API key, or the order's `client_token`",
    403: "WeChat refused this shopper's login (`login_blocked`)",
    404: "No such order, refund or event",
    408: "The request body did not arrive within the configured time (`request_timeout`)",
    409: "The order's state does not allow it, or the Idempotency-Key is in use",
    413: "The request body is larger than the configured limit (`body_too_large`)",
    422: "Well formed but refused: the Idempotency-Key was used with another body, or the "
         "refund is more than is left",
    429: "Rate limited (WeChat login quota); retry later",
    502: "The provider refused, answered nonsense or did not answer (`provider_timeout`: "
         "the outcome is unknown until a query settles it)",
    503: "The database or the provider could not be reached; nothing was changed: retry "
         "after `Retry-After` seconds",
}

#: The sandbox's paths (the simulators, the wallet) start with this.
SANDBOX = "/sandbox/"

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "schema": {"type": "integer", "minimum": 0}}}


def errors(*statuses: int, links: Mapping[int, dict[str, Any]] | None = None,
           ) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each error status in the one error shape, plus links."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": STATUS_TEXT[status]}
        if status == 503:
            entry["headers"] = _RETRY_AFTER
        responses[status] = entry
    for status, link_set in (links or {}).items():
        responses.setdefault(status, {})["links"] = link_set
    return responses


_ORDER_ID = {"order_id": "$response.body#/id"}
LINKS: dict[str, dict[str, Any]] = {
    "order": {
        "GetOrder": {"operationId": "getOrder", "parameters": _ORDER_ID,
                     "description": "The order just created"},
        "PayOrder": {"operationId": "payOrder", "parameters": _ORDER_ID,
                     "requestBody": {"client_token": "$response.body#/client_token"},
                     "description": "The mini program pays it with the order's client_token"},
        "GetOrderStatus": {"operationId": "getOrderStatus",
                           "parameters": {**_ORDER_ID,
                                          "client_token": "$response.body#/client_token"}},
        "CloseOrder": {"operationId": "closeOrder", "parameters": _ORDER_ID},
        "CreateRefund": {"operationId": "createRefund", "parameters": _ORDER_ID},
    },
    "refund": {
        "GetRefund": {"operationId": "getRefund",
                      "parameters": {"refund_id": "$response.body#/id"}},
        "GetRefundedOrder": {"operationId": "getOrder",
                             "parameters": {"order_id": "$response.body#/order_id"}},
    },
}

def create_order_choices(
    providers: Mapping[str, tuple[frozenset[str], frozenset[str]]],
    defaults: Mapping[str, str],
) -> list[dict[str, Any]]:
    """One ``anyOf`` branch per (provider given or default, channel, currency exponent).

    ``providers``: name → (channels, currencies); ``defaults``: channel → provider name.
    """
    branches: list[dict[str, Any]] = []

    def add(provider: dict[str, Any], channel: str, currencies: frozenset[str],
            required: list[str]) -> None:
        by_exponent: dict[int, list[str]] = {}
        for code in sorted(currencies & CURRENCY_EXPONENTS.keys()):
            by_exponent.setdefault(CURRENCY_EXPONENTS[code], []).append(code)
        for exp, codes in sorted(by_exponent.items()):
            branches.append({"type": "object", "required": required, "properties": {
                "provider": provider, "channel": {"const": channel},
                "currency": {"enum": codes},
                "amount": {"type": "string", "pattern": amount_pattern(exp)},
            }})

    for name, (channels, currencies) in sorted(providers.items()):
        for channel in sorted(channels):
            add({"const": name}, channel, currencies, ["provider"])
    for channel, name in sorted(defaults.items()):
        if name in providers and channel in providers[name][0]:
            add({"type": "null"}, channel, providers[name][1], [])
    return branches


def finish(schema: dict[str, Any], notify_paths: Mapping[str, Any],
           choices: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Post-process FastAPI's document (see the module docstring)."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            ref = (responses.get("422", {}).get("content", {}).get("application/json", {})
                   .get("schema", {}).get("$ref", ""))
            if ref.endswith("/HTTPValidationError"):
                del responses["422"]
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    paths = schema.setdefault("paths", {})
    paths.update(notify_paths)
    # minigate's own API first, the sandbox's simulators after it (in sandbox mode they
    # come first in the route table: see create_app).
    schema["paths"] = dict(sorted(paths.items(), key=lambda item: item[0].startswith(SANDBOX)))
    create = components.get("CreateOrder")
    if create is not None and choices:
        # The branches carry the exact formats; the base keeps only the shared bounds.
        create["properties"]["amount"] = {"type": "string", "minLength": 1, "maxLength": 20,
                                          "description": create["properties"]["amount"].get(
                                              "description", "")}
        create["anyOf"] = choices
        create["description"] = (
            "What this deployment accepts: each configured provider with the channels it "
            "serves and the currencies it charges in (amount digits by currency), or no "
            "provider and the channel's default provider.")
    tags = schema.setdefault("tags", [])
    known = {t["name"] for t in tags}
    for name, text in (("merchant", "Server to server, with the API key (`bearer`)"),
                       ("client", "From the mini program, with the order's `client_token`"),
                       ("provider callbacks", "Providers' notifications; raw body verified")):
        if name not in known:
            tags.append({"name": name, "description": text})
    return schema


PROVIDER_IDS = [p.value for p in ProviderId]
