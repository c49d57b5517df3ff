"""Idempotency-Key with recovery points (Stripe's keys, with "atomic phases").

A key is not only a lock around an operation: it records how far the operation got, in the
same transactions that do the work, so that a retry — in the same process or another,
before or after the first attempt died — resumes instead of starting again.

* First request with a key: a record is inserted ``in_flight`` with a lock (its own short
  transaction, so a concurrent duplicate sees it and gets 409).
* An operation that is one statement with no call outside the database (creating an order)
  skips that claim: its first attempt inserts the key already ``done``, with the answer, in
  the statement that creates the resource (:func:`run_idempotent` with
  ``one_statement=True``). That statement writes all or nothing, so if it fails for any
  reason — the key is already stored, the resource is refused — nothing was written and the
  request simply takes the path above, which finds the key (and replays, or answers 409 or
  422) or claims it.
* The operation advances the record's **recovery point** inside the transaction that
  creates its resource (:meth:`Attempt.advance`): the order row with its key, the refund
  reservation with its key. The point moves only from the value the attempt read, so two
  attempts can never both create.
* When the answer is known it is stored (:meth:`Attempt.complete`, in the resource's own
  transaction where the operation has one; else right after) and replayed for 24 h, byte
  for byte. The stored body is encrypted with a key derived from the merchant's API key:
  it holds the order's ``client_token``, which must not sit in the database in clear.
* Same key, same body: the stored answer; still running: 409; another body: 422.
* A failed attempt (an exception, a 5xx, a 409 from the operation) does not forget the key:
  it releases the lock and keeps the recovery point. The retry runs the operation again
  from that point — which is exactly "again" when the attempt changed nothing, and "resume"
  when it did. A lock whose process died runs out after :data:`LOCK`; a lock held by this
  very process for an attempt that is no longer running is taken over at once.

Keys are scoped per merchant API key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from minigate.errors import Conflict, MinigateError, Unprocessable
from minigate.service.context import ServiceContext
from minigate.service.views import json_bytes
from minigate.store.failures import database_unavailable
from minigate.store.hot import insert, record
from minigate.store.models import IdempotencyRecord

log = logging.getLogger("minigate.idempotency")

RETENTION = timedelta(hours=24)
LOCK = timedelta(seconds=60)
STARTED = "started"
#: This process, as the owner of the locks it takes.
PROCESS = secrets.token_hex(8)
#: (scope, key) of the attempts running in this process right now.
_running: set[tuple[str, str]] = set()

Operation = Callable[["Attempt"], Awaitable[tuple[int, dict[str, Any]]]]


def request_fingerprint(path: str, body: Any) -> str:
    canonical = json.dumps([path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def scope_for(api_key: str) -> str:
    return hashlib.sha256(b"idem:" + api_key.encode()).hexdigest()[:32]


@dataclass
class Attempt:
    """One attempt at a keyed request, handed to the operation. Without a key every method
    is a no-op and the operation simply runs."""

    scope: str
    key: str | None
    recovery_point: str = STARTED
    resource_id: str | None = None
    sealed: tuple[int, str] | None = None
    _box: ResponseBox | None = None
    #: The key's whole record, for an attempt that inserts it with its answer in the
    #: resource's own statement (``one_statement``); None when the key is already stored.
    fresh: dict[str, Any] | None = None

    @property
    def resumed(self) -> bool:
        """An earlier attempt created the resource: continue from it, create nothing."""
        return self.resource_id is not None

    async def advance(self, session: AsyncSession, point: str, resource_id: str) -> None:
        """Move the recovery point inside ``session``'s transaction (the one that creates
        ``resource_id``). Raises Conflict, rolling that transaction back, if another attempt
        moved it first."""
        if self.key is None:
            return
        moved = await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == self.scope, IdempotencyRecord.key == self.key,
                   IdempotencyRecord.recovery_point == self.recovery_point,
                   IdempotencyRecord.state == "in_flight")
            .values(recovery_point=point, resource_id=resource_id)
            .execution_options(synchronize_session=False))
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise key_taken()
        self.recovery_point, self.resource_id = point, resource_id

    async def complete(self, session: AsyncSession, status: int, body: dict[str, Any]) -> None:
        """Store the answer inside ``session``'s transaction (with the resource itself)."""
        values = self.completion(status, body)
        if values is None:
            return
        sealed = values["body"]
        done = await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == self.scope, IdempotencyRecord.key == self.key,
                   IdempotencyRecord.recovery_point == self.recovery_point,
                   IdempotencyRecord.state == "in_flight")
            .values(state="done", recovery_point="finished", response_status=status,
                    response_body=sealed)
            .execution_options(synchronize_session=False))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise key_taken()
        self.sealed = (status, sealed)

    def completion(self, status: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """The values with which :meth:`complete`'s conditional UPDATE stores the answer
        (``store.hot.COMPLETE_KEY`` on the lean path); None without a key. For a
        :attr:`fresh` attempt, the whole record to INSERT instead, done, with the answer
        (``store.hot.INSERT_KEY``). After that statement wrote exactly one row, call
        :meth:`completed`."""
        if self.key is None or self._box is None:
            return None
        if self.fresh is not None:
            return self.fresh | {"state": "done", "recovery_point": "finished",
                                 "response_status": status,
                                 "response_body": self._box.seal(body)}
        return {"scope": self.scope, "key": self.key, "from_point": self.recovery_point,
                "status": status, "body": self._box.seal(body)}

    def completed(self, values: dict[str, Any]) -> None:
        if self.fresh is not None:
            self.sealed = (values["response_status"], values["response_body"])
        else:
            self.sealed = (values["status"], values["body"])


def key_taken() -> Conflict:
    return Conflict("another request with this Idempotency-Key got there first; retry",
                    code="idempotency_key_in_use")


class ResponseBox:
    """AES-256-GCM for stored answers, keyed by HKDF(the merchant's API key)."""

    def __init__(self, api_key: str) -> None:
        self._aead = AESGCM(_derive(api_key))

    def seal(self, body: dict[str, Any]) -> str:
        nonce = os.urandom(12)
        plain = json_bytes(body)
        return "v1:" + base64.b64encode(nonce + self._aead.encrypt(nonce, plain, None)).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        if not sealed.startswith("v1:"):  # stored before answers were encrypted
            return dict(json.loads(sealed))
        raw = base64.b64decode(sealed[3:])
        try:
            return dict(json.loads(self._aead.decrypt(raw[:12], raw[12:], None)))
        except InvalidTag as exc:  # cannot happen for the right key: the scope is its hash
            raise MinigateError("stored response cannot be read") from exc


@functools.lru_cache(maxsize=16)
def _box(api_key: str) -> ResponseBox:
    """One box per API key (AES-GCM objects are stateless: each call brings its nonce)."""
    return ResponseBox(api_key)


@functools.lru_cache(maxsize=16)
def _derive(api_key: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None,
                info=b"minigate idempotency responses v1").derive(api_key.encode())


async def run_idempotent(
    ctx: ServiceContext, api_key: str, key: str | None, fingerprint: str, operation: Operation,
    *, one_statement: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Run ``operation`` at most once per (API key, Idempotency-Key); (HTTP status, body).

    ``one_statement``: the operation writes nothing outside one statement, and calls
    nothing outside the database, and that statement stores a :attr:`Attempt.fresh` key's
    answer with the resource (:meth:`Attempt.completion`). Its first attempt then runs
    without a claim; unless it stored its answer, it wrote nothing, and the request runs
    as any other (a stored key is replayed or refused, a new one is claimed)."""
    scope = scope_for(api_key)
    if key is None:
        return await _as_response(operation, Attempt(scope, None))
    box = _box(api_key)
    if one_statement:
        now = ctx.clock.now()
        first = Attempt(scope, key, _box=box, fresh=dict(
            scope=scope, key=key, request_hash=fingerprint, resource_id=None, owner=PROCESS,
            locked_until=now + LOCK, created_at=now))
        try:
            status, body = await operation(first)
        except Exception as exc:
            if database_unavailable(exc):  # the path below would only fail the same way
                raise
        else:
            if first.sealed is not None:
                return status, body
    attempt_or_replay = await _begin(ctx, scope, key, fingerprint, box)
    if isinstance(attempt_or_replay, tuple):
        return attempt_or_replay
    attempt = attempt_or_replay
    attempt._box = box
    _running.add((scope, key))
    try:
        try:
            status, body = await _as_response(operation, attempt)
        except BaseException:
            await _release(ctx, scope, key)
            raise
        if status >= 500 or status == 409:
            await _release(ctx, scope, key)  # run again on retry, from the recovery point
        elif attempt.sealed is None:
            await _finish(ctx, scope, key, status, box.seal(body))
    finally:
        _running.discard((scope, key))
    return status, body


async def _as_response(operation: Operation, attempt: Attempt) -> tuple[int, dict[str, Any]]:
    from minigate.api.errors import error_body

    try:
        return await operation(attempt)
    except MinigateError as exc:
        return exc.status, error_body(exc.type, exc.code, exc.message, exc.param)


def _in_use() -> Conflict:
    return Conflict("a request with this Idempotency-Key is still in progress; retry",
                    code="idempotency_key_in_use")


async def _begin(
    ctx: ServiceContext, scope: str, key: str, fingerprint: str, box: ResponseBox,
) -> Attempt | tuple[int, dict[str, Any]]:
    now = ctx.clock.now()
    row = record(IdempotencyRecord, scope=scope, key=key, request_hash=fingerprint,
                 state="in_flight", recovery_point=STARTED, resource_id=None,
                 owner=PROCESS, locked_until=now + LOCK, created_at=now)
    try:
        await ctx.hot.steps(insert(row))  # the lean path (store/hot.py), one statement
        return Attempt(scope, key)
    except IntegrityError:
        pass
    async with ctx.sessions() as session, session.begin():
        existing = (await session.execute(select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key))).scalar_one_or_none()
        if existing is None:  # expired and purged between the two statements
            raise _in_use()
        if existing.request_hash != fingerprint:
            raise Unprocessable("Idempotency-Key was already used with a different request",
                                param="Idempotency-Key", code="idempotency_key_reused")
        if existing.state == "done":
            return existing.response_status or 200, box.open(existing.response_body or "{}")
        orphaned = existing.owner == PROCESS and (scope, key) not in _running
        if existing.locked_until > now and not orphaned:
            raise _in_use()
        # The first attempt is over (its process died, or it failed here): take over and
        # resume from where it got.
        taken = await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key,
                   IdempotencyRecord.state == "in_flight",
                   IdempotencyRecord.owner == existing.owner,
                   IdempotencyRecord.locked_until == existing.locked_until)
            .values(locked_until=now + LOCK, owner=PROCESS)
            .execution_options(synchronize_session=False))
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise _in_use()
        if existing.resource_id is not None:
            log.info("Idempotency-Key resumed at %s (%s)", existing.recovery_point,
                     existing.resource_id)
        return Attempt(scope, key, existing.recovery_point, existing.resource_id)


async def _finish(ctx: ServiceContext, scope: str, key: str, status: int, sealed: str) -> None:
    async with ctx.sessions() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            .values(state="done", recovery_point="finished", response_status=status,
                    response_body=sealed)
            .execution_options(synchronize_session=False))


async def _release(ctx: ServiceContext, scope: str, key: str) -> None:
    """Let the next attempt take over now. Best effort: if the database is down, this
    process still recognises the orphaned lock as its own, and other processes wait out
    :data:`LOCK`."""
    try:
        async with ctx.sessions() as session, session.begin():
            await session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key,
                       IdempotencyRecord.state == "in_flight", IdempotencyRecord.owner == PROCESS)
                .values(locked_until=ctx.clock.now())
                .execution_options(synchronize_session=False))
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning("could not release Idempotency-Key lock: database unavailable")


async def purge_expired(ctx: ServiceContext) -> int:
    """Forget keys past retention (and any in-flight record whose lock is long gone)."""
    now = ctx.clock.now()
    cutoff = now - RETENTION
    async with ctx.sessions() as session, session.begin():
        result = await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.created_at < cutoff,
                or_(IdempotencyRecord.state == "done", IdempotencyRecord.locked_until < now)))
    return int(result.rowcount)  # type: ignore[attr-defined]
