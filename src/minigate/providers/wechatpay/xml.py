"""WeChat Pay v2 XML: flat ``<xml><name>value</name>…</xml>`` documents.

Parsing goes through :mod:`defusedxml` only, with DTDs, entity declarations and external
references forbidden, and a size cap checked before the parser sees a byte: a callback
body is attacker-controlled until its signature holds, so nothing in it may make us read a
file, fetch a URL or expand entities (XXE, "billion laughs").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from xml.etree.ElementTree import ParseError  # noqa: S405 - the exception type only

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped]

MAX_XML_BYTES = 64 * 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class XmlRejected(ValueError):
    """A body that is not a small, flat, DTD-free XML document."""


def parse_xml(body: bytes, root: str = "xml") -> dict[str, str]:
    """The child elements of ``<root>`` as name → text (CDATA unwrapped, missing text = "")."""
    if len(body) > MAX_XML_BYTES:
        raise XmlRejected(f"XML body larger than {MAX_XML_BYTES} bytes")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise XmlRejected("DTDs and entity declarations are not allowed")
    try:
        element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError) as exc:
        raise XmlRejected(f"XML rejected: {type(exc).__name__}") from exc
    if element.tag != root:
        raise XmlRejected(f"XML root is <{element.tag}>, expected <{root}>")
    fields: dict[str, str] = {}
    for child in element:
        if len(child):
            raise XmlRejected(f"nested XML under <{child.tag}> is not expected")
        fields[str(child.tag)] = child.text or ""
    return fields


def to_xml(fields: Mapping[str, object], root: str = "xml") -> bytes:
    """A flat XML document with every value in CDATA (as WeChat sends and expects)."""
    parts = [f"<{root}>"]
    for name, value in fields.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"invalid XML element name {name!r}")
        text = str(value).replace("]]>", "]]]]><![CDATA[>")  # CDATA cannot hold "]]>"
        parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
    parts.append(f"</{root}>")
    return "".join(parts).encode()
