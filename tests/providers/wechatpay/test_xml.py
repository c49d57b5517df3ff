"""XML is parsed with defusedxml only: no DTDs, entities, external reads or huge bodies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigate.errors import NotificationRejected
from minigate.providers.wechatpay import v2sign
from minigate.providers.wechatpay.v2_messages import V2Account, verify_notification
from minigate.providers.wechatpay.xml import MAX_XML_BYTES, XmlRejected, parse_xml, to_xml

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><return_code>SUCCESS</return_code><attach>&xxe;</attach></xml>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<xml><return_code>&lol9;</return_code></xml>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://attacker.invalid/evil.dtd">
<xml><return_code>SUCCESS</return_code></xml>"""

ACCOUNT = V2Account("1900009999", "wx5a7dbe0000sandbox", "k" * 32)


@pytest.mark.parametrize("payload", [XXE, BILLION_LAUGHS, EXTERNAL_DTD,
                                     XXE.replace(b"DOCTYPE", b"doctype")])
def test_dtds_and_entities_rejected(payload: bytes) -> None:
    with pytest.raises(XmlRejected):
        parse_xml(payload)


@pytest.mark.parametrize("payload", [XXE, BILLION_LAUGHS])
def test_notification_with_entities_is_rejected_not_read(payload: bytes) -> None:
    with pytest.raises(NotificationRejected):
        verify_notification(ACCOUNT, payload)


def test_oversized_body_rejected_before_parsing() -> None:
    body = b"<xml><a>" + b"x" * MAX_XML_BYTES + b"</a></xml>"
    with pytest.raises(XmlRejected, match="larger"):
        parse_xml(body)


def test_nested_and_wrong_root_rejected() -> None:
    with pytest.raises(XmlRejected):
        parse_xml(b"<xml><a><b>1</b></a></xml>")
    with pytest.raises(XmlRejected):
        parse_xml(b"<root><a>1</a></root>")
    with pytest.raises(XmlRejected):
        parse_xml(b"<xml><a>1</a>")


def test_cdata_and_plain_text_both_read() -> None:
    assert parse_xml(b"<xml><a><![CDATA[x<y]]></a><b>2</b><c/></xml>") == \
        {"a": "x<y", "b": "2", "c": ""}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text("abcdefghij_", min_size=1, max_size=10),
                       st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
                       max_size=8))
def test_to_xml_parse_xml_round_trip(fields: dict[str, str]) -> None:
    assert parse_xml(to_xml(fields)) == fields


def test_signed_notification_verifies_and_tampering_fails() -> None:
    fields = {"return_code": "SUCCESS", "appid": ACCOUNT.appid, "mch_id": ACCOUNT.mchid,
              "result_code": "SUCCESS", "out_trade_no": "T1234567", "transaction_id": "4200001",
              "total_fee": "1230", "fee_type": "CNY", "nonce_str": "n1",
              "sign_type": "HMAC-SHA256"}
    fields["sign"] = v2sign.sign(fields, ACCOUNT.api_key, "HMAC-SHA256")
    verified = verify_notification(ACCOUNT, to_xml(fields))
    assert verified.event_key == "4200001"
    assert verified.payment is not None and verified.payment.amount is not None
    assert verified.payment.amount.minor == 1230 and verified.payment.status.value == "paid"
    with pytest.raises(NotificationRejected, match="sign"):
        verify_notification(ACCOUNT, to_xml({**fields, "total_fee": "1"}))
    # Without sign_type the notification is read as MD5, so this HMAC sign fails.
    no_type = {k: v for k, v in fields.items() if k != "sign_type"}
    with pytest.raises(NotificationRejected):
        verify_notification(ACCOUNT, to_xml(no_type))
