"""Idempotency-Key, as Stripe does it.

* first request with a key: recorded as in flight, run, its response (status and body,
  errors included) stored and replayed for 24 h;
* same key, same body: the stored response, byte for byte;
* same key, another body: 422; same key while the first is still running: 409;
* a first request that failed with a retryable (5xx) error is forgotten, so the retry runs.

Keys are scoped per merchant API key. The in-flight record has a lock that expires, so a
process that died mid-request does not block the key forever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from minigate.errors import Conflict, MinigateError, Unprocessable
from minigate.service.context import ServiceContext
from minigate.store.models import IdempotencyRecord

RETENTION = timedelta(hours=24)
LOCK = timedelta(seconds=60)


def request_fingerprint(path: str, body: Any) -> str:
    canonical = json.dumps([path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def scope_for(api_key: str) -> str:
    return hashlib.sha256(b"idem:" + api_key.encode()).hexdigest()[:32]


async def run_idempotent(
    ctx: ServiceContext, scope: str, key: str | None, fingerprint: str,
    operation: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any]]:
    """Run ``operation`` at most once per (scope, key); returns (HTTP status, body)."""
    if key is None:
        return await _as_response(operation)
    replay = await _begin(ctx, scope, key, fingerprint)
    if replay is not None:
        return replay
    try:
        status, body = await _as_response(operation)
    except BaseException:
        await _forget(ctx, scope, key)
        raise
    if status >= 500 or status == 409:
        await _forget(ctx, scope, key)
    else:
        await _finish(ctx, scope, key, status, body)
    return status, body


async def _as_response(
    operation: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any]]:
    from minigate.api.errors import error_body

    try:
        return await operation()
    except MinigateError as exc:
        return exc.status, error_body(exc.type, exc.code, exc.message, exc.param)


async def _begin(
    ctx: ServiceContext, scope: str, key: str, fingerprint: str
) -> tuple[int, dict[str, Any]] | None:
    now = ctx.clock.now()
    record = IdempotencyRecord(scope=scope, key=key, request_hash=fingerprint,
                               state="in_flight", locked_until=now + LOCK, created_at=now)
    try:
        async with ctx.sessions() as session, session.begin():
            session.add(record)
        return None
    except IntegrityError:
        pass
    async with ctx.sessions() as session, session.begin():
        existing = await session.get(IdempotencyRecord, (scope, key))
        if existing is None:  # expired and purged between the two statements
            raise Conflict("request with this Idempotency-Key is in flight; retry",
                           code="idempotency_key_in_use")
        if existing.request_hash != fingerprint:
            raise Unprocessable("Idempotency-Key was already used with a different request",
                                param="Idempotency-Key", code="idempotency_key_reused")
        if existing.state == "done":
            return existing.response_status or 200, json.loads(existing.response_body or "{}")
        if existing.locked_until > now:
            raise Conflict("a request with this Idempotency-Key is still in progress",
                           code="idempotency_key_in_use")
        taken = await session.execute(  # the first request's process died: take over
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key,
                   IdempotencyRecord.locked_until <= now)
            .values(locked_until=now + LOCK)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("a request with this Idempotency-Key is still in progress",
                           code="idempotency_key_in_use")
    return None


async def _finish(ctx: ServiceContext, scope: str, key: str, status: int,
                  body: dict[str, Any]) -> None:
    async with ctx.sessions() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            .values(state="done", response_status=status, response_body=json.dumps(body))
        )


async def _forget(ctx: ServiceContext, scope: str, key: str) -> None:
    async with ctx.sessions() as session, session.begin():
        await session.execute(delete(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key))


async def purge_expired(ctx: ServiceContext) -> int:
    cutoff = ctx.clock.now() - RETENTION
    async with ctx.sessions() as session, session.begin():
        result = await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
