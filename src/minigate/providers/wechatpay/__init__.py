"""WeChat Pay direct (API v2 and v3)."""
