"""API v2 signatures and the refund ``req_info`` cipher."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigate.providers.wechatpay import v2sign
from minigate.providers.wechatpay.v2_messages import V2Account, client_params
from minigate.providers.wechatpay.xml import parse_xml
from tests.providers.wechatpay.vectors import DIR, vectors

KEY = "192006250b4c09247ec02edce69f6a2d"
OFFICIAL_PARAMS = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
                   "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}


def test_string_to_sign_matches_the_documented_example() -> None:
    assert v2sign.string_to_sign(OFFICIAL_PARAMS, KEY) == (
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100"
        "&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d")


def published() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads((DIR / "v2_published.json").read_text())
    return data


def test_published_md5_example() -> None:
    v = published()["sign_md5"]
    params, key = v["params"], str(v["key"])
    assert isinstance(params, dict)
    assert v2sign.string_to_sign(params, key) == v["string_sign_temp"]
    assert v2sign.sign(params, key, v2sign.MD5) == v["sign"]
    assert v2sign.verify({**params, "sign": str(v["sign"])}, key, v2sign.MD5)


def test_published_hmac_sha256_example() -> None:
    v = published()["sign_hmac_sha256"]
    params, key = v["params"], str(v["key"])
    assert isinstance(params, dict)
    assert v2sign.sign(params, key, v2sign.HMAC_SHA256) == v["sign"]
    assert v2sign.verify({**params, "sign": str(v["sign"])}, key, v2sign.HMAC_SHA256)


def test_published_mini_program_pay_sign_example() -> None:
    v = {k: str(x) for k, x in published()["pay_sign_md5"].items()}
    fields = v2sign.pay_sign_params(v["appId"], v["timeStamp"], v["nonceStr"], v["package"],
                                    v["signType"])
    assert v2sign.sign(fields, v["key"], v2sign.MD5) == v["paySign"]
    # The connector's own builder gives the mini program exactly that paySign.
    account = V2Account("10000100", v["appId"], v["key"], v2sign.MD5)
    params = client_params(account, v["package"].removeprefix("prepay_id="),
                           int(v["timeStamp"]), v["nonceStr"])
    assert params["paySign"] == v["paySign"] and params["signType"] == "MD5"


def test_md5_sign_is_upper_md5_of_the_string() -> None:
    text = v2sign.string_to_sign(OFFICIAL_PARAMS, KEY)
    assert v2sign.sign(OFFICIAL_PARAMS, KEY) == hashlib.md5(text.encode()).hexdigest().upper()


def test_empty_values_and_sign_are_not_signed() -> None:
    with_extras = {**OFFICIAL_PARAMS, "attach": "", "sign": "X"}
    assert v2sign.sign(with_extras, KEY, v2sign.HMAC_SHA256) == \
        v2sign.sign(OFFICIAL_PARAMS, KEY, v2sign.HMAC_SHA256)


def test_req_info_vector_w2_6() -> None:
    v = vectors()["v2_refund_reqinfo_selfgenerated"]
    assert hashlib.md5(v["api_key"].encode()).hexdigest() == v["aes_key(md5 hex lower)"]
    plaintext = v2sign.decrypt_req_info(v["req_info"], v["api_key"])
    assert plaintext.decode() == v["plaintext"]
    fields = parse_xml(plaintext, "root")
    assert fields["refund_status"] == "SUCCESS" and fields["refund_fee"] == "3960"


def test_req_info_with_the_wrong_key_does_not_decrypt() -> None:
    v = vectors()["v2_refund_reqinfo_selfgenerated"]
    with pytest.raises(ValueError):
        v2sign.decrypt_req_info(v["req_info"], "0" * 32)
    with pytest.raises(ValueError):
        v2sign.decrypt_req_info("not base64!", v["api_key"])


def test_unknown_sign_types_never_verify() -> None:
    signed = {**OFFICIAL_PARAMS, "sign": v2sign.sign(OFFICIAL_PARAMS, KEY)}
    assert v2sign.signatures_match(signed, KEY, "MD5")
    assert not v2sign.signatures_match(signed, KEY, "SHA1")
    assert not v2sign.signatures_match(signed, KEY, "HMAC-SHA256")


params_strategy = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda k: k != "sign"),
    st.text(min_size=0, max_size=30), min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(params=params_strategy, key=st.text("0123456789abcdef", min_size=32, max_size=32),
       sign_type=st.sampled_from([v2sign.MD5, v2sign.HMAC_SHA256]))
def test_sign_verify_round_trip(params: dict[str, str], key: str, sign_type: str) -> None:
    signed = {**params, "sign": v2sign.sign(params, key, sign_type)}
    assert v2sign.verify(signed, key, sign_type)
    assert not v2sign.verify(signed, key[::-1] + "x", sign_type)
    changed = next(iter(params))
    tampered = {**signed, changed: signed[changed] + "1"}
    assert not v2sign.verify(tampered, key, sign_type)


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=300), key=st.text(min_size=1, max_size=40))
def test_req_info_round_trip(plaintext: bytes, key: str) -> None:
    assert v2sign.decrypt_req_info(v2sign.encrypt_req_info(plaintext, key), key) == plaintext
