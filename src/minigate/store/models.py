"""Tables. Amounts are BIGINT minor units; times are timezone-aware UTC.

Uniqueness constraints carry the money rules: one payment per provider order number, one
refund per provider refund number, one notification record per provider event, one
idempotency record per (API key, Idempotency-Key).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_text(value: datetime | None) -> str | None:
    """What SQLAlchemy's SQLite ``DATETIME`` stores for ``process_bind_param(value)``
    (``YYYY-MM-DD HH:MM:SS.ffffff``, the UTC time), formatted in C: every write of the hot
    path binds several datetimes, and the ``%``-format of a dict costs more than the rest of
    the binding (``tests/store/test_models.py`` holds the two to the same text)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_reference: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(127))
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    #: Indexed as the first column of ``ix_orders_status_expires``, which serves a
    #: lookup by status alone too.
    status: Mapped[str] = mapped_column(String(24))
    client_token_hash: Mapped[str] = mapped_column(String(64))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_reserved_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: Expiry: not before this may a worker try to close the order (its lease while one
    #: works on it; the provider's earliest close time; a wait after a failed close).
    close_after: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_orders_created", "created_at", "id"),
        Index("ix_orders_status_expires", "status", "expires_at"),
        # One order per merchant reference: a retried create can never leave an orphan.
        UniqueConstraint("merchant_reference", name="uq_orders_merchant_reference"),
    )


class Payment(Base):
    """One payment attempt at a provider; its number is stored before the provider call."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    provider: Mapped[str] = mapped_column(String(32))
    provider_order_no: Mapped[str] = mapped_column(String(64))
    provider_txn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(24))
    openid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    client_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    params_expire_at: Mapped[datetime | None] = mapped_column(nullable=True)
    next_check_at: Mapped[datetime | None] = mapped_column(nullable=True)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint("provider", "provider_order_no", name="uq_payments_provider_no"),
        UniqueConstraint("order_id", name="uq_payments_order"),
        Index("ix_payments_check", "status", "next_check_at"),
    )


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_refund_no: Mapped[str] = mapped_column(String(64))
    provider_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(255), default="")
    failure_reason: Mapped[str] = mapped_column(String(255), default="")
    #: When the refund call was first sent; None = not yet (auto-refunds wait for the runner).
    submitted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    next_check_at: Mapped[datetime | None] = mapped_column(nullable=True)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint("provider", "provider_refund_no", name="uq_refunds_provider_no"),
        Index("ix_refunds_check", "status", "next_check_at"),
    )


class Event(Base):
    """The order timeline and the merchant-webhook outbox, written in the same transaction
    as the state change it describes."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(48))
    order_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    deliver: Mapped[int] = mapped_column(Integer, default=0)
    delivery_status: Mapped[str] = mapped_column(String(16), default="none")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index("ix_events_delivery", "delivery_status", "next_attempt_at"),)


class WebhookAttempt(Base):
    """One POST of an event to the merchant's webhook URL and what came back (the
    dashboard's delivery history). ``status_code`` is None when no HTTP answer came."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_seq: Mapped[int] = mapped_column(BigInteger, index=True)
    attempted_at: Mapped[datetime] = mapped_column()
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(255), default="")


class Notification(Base):
    """One record per provider event: the unique key is what makes duplicates harmless."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(160))
    order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column()

    __table_args__ = (UniqueConstraint("provider", "event_key", name="uq_notifications_event"),)


class IdempotencyRecord(Base):
    """An Idempotency-Key and how far its request got (``service/idempotency.py``).

    ``recovery_point`` and ``resource_id`` are advanced in the same transaction as the
    resource they name (the order, the refund reservation), so a retry after any crash
    finds what the first attempt did. ``response_body`` is encrypted with a key derived
    from the merchant's API key (it holds the order's ``client_token``).
    """

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    recovery_point: Mapped[str] = mapped_column(String(24), default="started",
                                                server_default="started")
    resource_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The process that holds the lock (a random id per process start).
    owner: Mapped[str] = mapped_column(String(32), default="", server_default="")
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    locked_until: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
