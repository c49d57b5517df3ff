"""The HTTP API (FastAPI): thin routes, request schemas, one error mapping."""
