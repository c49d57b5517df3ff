"""Latipay signatures against the published vectors (providers.md §1.10, api_key 111222333)."""

from __future__ import annotations

from datetime import UTC, datetime

from minigate.domain.money import Money
from minigate.providers.base import PaymentRef
from minigate.providers.latipay import messages, signing

KEY = "111222333"
NOW = datetime(2026, 1, 1, tzinfo=UTC)

L1_PARAMS = {
    "user_id": "U000334333", "wallet_id": "W00000001", "amount": "120.00",
    "payment_method": "alipay", "return_url": "https://merchantsite.com/checkout",
    "callback_url": "https://merchantsite.com/confirm", "merchant_reference": "dsi39ej430sks03",
    "ip": "122.122.122.1", "version": "2.0", "product_name": "Pinot Noir, Otago",
}


def test_l1_transaction_message_and_signature() -> None:
    message = signing.request_message(L1_PARAMS, KEY)
    assert message == (
        "amount=120.00&callback_url=https://merchantsite.com/confirm&ip=122.122.122.1"
        "&merchant_reference=dsi39ej430sks03&payment_method=alipay&product_name=Pinot Noir, Otago"
        "&return_url=https://merchantsite.com/checkout&user_id=U000334333&version=2.0"
        "&wallet_id=W00000001111222333"
    )
    assert signing.sign_request(L1_PARAMS, KEY) == (
        "8d1bea078eaacdae8388852851ec39e2e8561cdce64f359421d85ed4844496ec")


def test_l2_miniapp_page_message() -> None:
    params = {**L1_PARAMS, "app_id": "wx721398712681232"}
    assert signing.sign_request(params, KEY) == (
        "5c732083dbae8b6402bb329a0d1862de2f2337e4bc5b1ee721218fc2c3271db9")


def test_l3_minialipay() -> None:
    params = {k: v for k, v in L1_PARAMS.items() if k not in ("payment_method", "return_url")}
    assert signing.sign_request(params, KEY) == (
        "1f8e75dd34fc5ca7b478772efdb6fa9e1a5c89e8e0412ccde81912fc16e2ed07")


def test_l8_miniapppay_example_body() -> None:
    body = {
        "user_id": "U000334333", "wallet_id": "W00000001", "amount": "120.00",
        "notify_url": "https://merchantsite.com/latipay/notify",
        "merchant_reference": "Order898237426347832", "product_name": "Online Ticket",
        "app_id": "wx721398712681232", "open_id": "obRdo5H-72b_PH2Lvr5_Dw9bXKHs",
        "signature": "ignored: never part of the message",
    }
    assert signing.sign_request(body, KEY) == (
        "3f12f370b4cac5131186513aa1ff4a6c5e47807efde2f2ca57d4a61b2af7847f")


def test_cancel_signed_with_the_sorted_rule() -> None:
    params = {"user_id": "U000000013", "merchant_reference": "9872428736782682"}
    assert signing.sign_request(params, KEY) == (
        "20d55646730202fcbe9e763a900f2fa4d601ba58414ef18ef446dd2cb82a4b9b")


def test_empty_and_none_values_are_left_out() -> None:
    with_empty = {"a": "1", "b": "", "c": None, "d": "x"}
    assert signing.request_message(with_empty, "K") == "a=1&d=xK"


def test_result_signature_is_plain_concatenation() -> None:
    expected = signing.hmac_hex(KEY, "dsi39ej430sks03alipaypaidNZD120.00")
    assert signing.result_signature(KEY, "dsi39ej430sks03", "alipay", "paid", "NZD",
                                    "120.00") == expected
    assert signing.signatures_match(expected, expected)
    assert not signing.signatures_match(expected, expected[:-1] + "0")


def test_l5_query_request_message() -> None:
    """providers.md §1.10 L5: the query signs merchant_reference and user_id."""
    account = messages.LatipayAccount("U000000013", "W1", KEY, "https://lp.test")
    request = messages.build_query(account, PaymentRef("6000324", Money(100, "NZD"), NOW))
    params = {"merchant_reference": "6000324", "user_id": "U000000013"}
    assert signing.request_message(params, KEY) == "merchant_reference=6000324&user_id=U000000013111222333"
    assert request.url.endswith(
        "/v2/transaction/6000324?user_id=U000000013&signature=" + signing.sign_request(params, KEY))


def test_l6_refund_message() -> None:
    params = {"user_id": "U000334333", "order_id": "23479798sdf7987234",
              "refund_amount": "120.00", "reference": "notes about this refund"}
    assert signing.request_message(params, KEY) == (
        "order_id=23479798sdf7987234&reference=notes about this refund&refund_amount=120.00"
        "&user_id=U000334333111222333")


def test_l7_cancel_message_is_sorted_unlike_the_doc_example() -> None:
    params = {"user_id": "U000000013", "merchant_reference": "9872428736782682"}
    assert signing.request_message(params, KEY) == (
        "merchant_reference=9872428736782682&user_id=U000000013111222333")
