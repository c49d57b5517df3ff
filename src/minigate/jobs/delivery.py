"""Merchant-facing controls of webhook delivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from minigate.domain.events import DELIVERABLE
from minigate.errors import Conflict
from minigate.service.context import ServiceContext
from minigate.service.views import event_view
from minigate.store.models import Event


async def redeliver(ctx: ServiceContext, event_id: str) -> dict[str, Any] | None:
    """Put an event back in the delivery queue, due now (same event id, same body)."""
    if not ctx.settings.webhook_url:
        raise Conflict("no webhook_url is configured", code="webhooks_not_configured")
    async with ctx.sessions() as session, session.begin():
        event = (await session.execute(select(Event).where(Event.id == event_id))).scalar_one_or_none()
        if event is None or event.type not in {t.value for t in DELIVERABLE}:
            return None
        event.deliver, event.delivery_status = 1, "pending"
        event.next_attempt_at = ctx.clock.now()
        view = event_view(event)
    ctx.kick()
    return view
