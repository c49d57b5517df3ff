"""QFPay signatures against the vectors in providers.md §2.11 (tests/fixtures)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from minigate.providers.qfpay import signing
from tests.conftest import FIXTURES

VECTORS: dict[str, Any] = json.loads((FIXTURES / "qfpay_vectors.json").read_text())
DOC = VECTORS["qfpay_req_doc_inputs"]
MINI = VECTORS["qfpay_req_800213_selfgenerated"]
NOTIFY = VECTORS["qfpay_notify_selfgenerated"]

MINI_PARAMS = {"txamt": 100, "txcurrcd": "SGD", "pay_type": "800213",
               "out_trade_no": "0123456789", "txdtm": "2020-07-03 03:14:29",
               "sub_openid": "oS80_5dxekECAOlVBeQFk34q123s"}
MINI_KEY = "498717301B0846D1992B6F0000000000"


def test_doc_example_string_and_hashes() -> None:
    params = {"txcurrcd": "HKD", "mchid": "ZaMVg12345", "txamt": 100}
    assert signing.string_to_sign(params, "abcd1234") == DOC["string"]
    assert signing.sign(params, "abcd1234") == DOC["md5_upper"]
    assert signing.sign(params, "abcd1234", signing.SHA256) == DOC["sha256_upper"]


@pytest.mark.parametrize(("sign_type", "expected"), [
    (signing.MD5, MINI["md5_upper"]), (signing.SHA256, MINI["sha256_upper"])])
def test_mini_program_payload(sign_type: str, expected: str) -> None:
    assert signing.string_to_sign(MINI_PARAMS, MINI_KEY) == MINI["string"]
    assert signing.sign(MINI_PARAMS, MINI_KEY, sign_type) == expected


def test_empty_values_are_not_signed() -> None:
    with_empty = {**MINI_PARAMS, "goods_name": "", "udid": None}
    assert signing.sign(with_empty, MINI_KEY) == MINI["md5_upper"]


def test_unknown_sign_type_is_refused() -> None:
    with pytest.raises(ValueError):
        signing.sign(MINI_PARAMS, MINI_KEY, "SHA1")


def test_notification_signature_over_raw_bytes() -> None:
    body = NOTIFY["raw_body"].encode()
    assert signing.notification_signature(body, NOTIFY["client_key"]) == NOTIFY["X-QF-SIGN"]


def test_comparison_is_case_insensitive_and_rejects_others() -> None:
    assert signing.signatures_match(MINI["md5_upper"], MINI["md5_upper"].lower())
    assert signing.signatures_match(MINI["sha256_upper"], MINI["sha256_lower"])
    assert not signing.signatures_match(MINI["md5_upper"], DOC["md5_upper"])
    assert not signing.signatures_match(MINI["md5_upper"], None)
    assert not signing.signatures_match(MINI["md5_upper"], "")
