"""The simulators' real media types, for ``/openapi.json``: their handlers read the raw body
themselves (as the providers' servers would), so FastAPI cannot see what they take."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response


class XMLResponse(Response):
    """WeChat Pay API v2 answers ``text/xml``."""

    media_type = "text/xml"


def raw_body(media_type: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads a raw body of ``media_type``."""
    schema: dict[str, Any] = {"type": "string"} if media_type == "text/xml" else {"type": "object"}
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


JSON = raw_body("application/json")
FORM = raw_body("application/x-www-form-urlencoded")
XML = raw_body("text/xml")
