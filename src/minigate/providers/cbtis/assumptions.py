"""Every CBTIS detail that is NOT in CBTIS's public docs, in one place.

What is confirmed (providers.md §3.2, the WeChat mini program page): the create call
``POST /mch-api/v1/pa/payment_intents/create`` and its fields, the ``{code, data, message,
rid}`` envelope with ``code`` 0 for success, ``next_action {type: "call_sdk", data: {…wx
params…}}``, the query call ``POST /mch-api/v1/pa/payment_intents/query`` (by ``order_id``
or ``merchant_order_id``), statuses PENDING / SUCCEEDED / CANCELLED, and a webhook body
``{"notify_type": "payment_success", "data": {order_id, merchant_order_id}}``.

Everything below is an assumption. The API is a near-clone of Airwallex's Payment Intents
API, so the unpublished parts are modelled on Airwallex (providers.md §3.3, §3.4). Each
constant names the one thing it assumes; docs/providers/cbtis.md lists them for humans.
Because the webhook format is unconfirmed, a webhook is only ever a hint: minigate queries
the payment and trusts the query alone.
"""

from __future__ import annotations

from datetime import timedelta

# -- amounts ------------------------------------------------------------------------------
#: A1. ``amount`` is a decimal string in MAJOR units ("12.30" HKD), as at Airwallex. The
#: doc's only example is ``"1"`` HKD, which fits either reading.
AMOUNT_IN_MAJOR_UNITS = True

#: A1b. The currencies an account charges in. CBTIS's create page names only examples
#: ("TWD/HKD/USD", providers.md §CBTIS) and its sample is HKD: those three are accepted,
#: any other is refused at order creation rather than found out at pay time.
CURRENCIES = frozenset({"HKD", "TWD", "USD"})

# -- authentication -----------------------------------------------------------------------
#: A2. Access tokens come from a login call, as at Airwallex.
LOGIN_PATH = "/mch-api/v1/authentication/login"
#: A3. The login call carries the credentials in these headers and has an empty JSON body.
CLIENT_ID_HEADER = "x-client-id"
API_KEY_HEADER = "x-api-key"
#: A4. It answers ``{"token": …, "expires_at": ISO-8601}`` (HTTP 200 or 201), either bare
#: or inside the usual ``{code, data}`` envelope; without ``expires_at`` we assume
#: Airwallex's 30 minutes.
DEFAULT_TOKEN_TTL = timedelta(minutes=30)
#: A5. Other calls send ``Authorization: Bearer <token>``; HTTP 401 means the token is no
#: longer valid: log in again and retry the call once.
AUTH_HEADER = "Authorization"
#: Refresh this long before ``expires_at`` so a token never expires in flight.
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)

# -- other calls --------------------------------------------------------------------------
CREATE_PATH = "/mch-api/v1/pa/payment_intents/create"  # confirmed
QUERY_PATH = "/mch-api/v1/pa/payment_intents/query"  # confirmed (seed docs)
#: A6. Cancel an unpaid intent: ``{order_id | merchant_order_id}`` → status CANCELLED.
CANCEL_PATH = "/mch-api/v1/pa/payment_intents/cancel"
#: A7. Refunds: ``{order_id, merchant_refund_id, amount, reason}``; ``merchant_refund_id``
#: makes a retried refund idempotent. Answer ``data {refund_id, merchant_refund_id,
#: amount, currency, status}``.
REFUND_PATH = "/mch-api/v1/pa/refunds/create"
#: A8. Refund lookup by ``merchant_refund_id``.
REFUND_QUERY_PATH = "/mch-api/v1/pa/refunds/query"
#: A9. Refund statuses (Airwallex's): RECEIVED/ACCEPTED in progress, SETTLED done, FAILED.
REFUND_PENDING = frozenset({"RECEIVED", "ACCEPTED", "PENDING", "PROCESSING"})
REFUND_SUCCEEDED = frozenset({"SETTLED", "SUCCEEDED"})
REFUND_FAILED = frozenset({"FAILED", "CANCELLED"})
#: A10. Error envelopes carry a non-zero ``code``; an unknown order or refund is
#: ``code`` 404 (or HTTP 404). Other non-zero codes are refusals.
NOT_FOUND_CODES = frozenset({"404", "resource_not_found", "not_found"})

# -- webhooks -----------------------------------------------------------------------------
#: A11. Webhooks are signed like Airwallex's: ``x-signature`` = hex HMAC-SHA256 keyed with
#: the webhook secret over ``x-timestamp`` (Unix milliseconds, as text) + the raw body.
TIMESTAMP_HEADER = "x-timestamp"
SIGNATURE_HEADER = "x-signature"
#: A12. Webhooks older or newer than this are refused (replay protection).
WEBHOOK_WINDOW = timedelta(minutes=5)
#: A13. Refund webhooks (if any) carry ``data.merchant_refund_id``; they are hints too.
#: A14. The ack is HTTP 200 (body ignored, we send ``success``); anything else is retried.
ACK_OK = (200, b"success")
ACK_REJECTED = (401, b"rejected")
