"""``GET /sandbox/_ledger``: what the simulated providers hold, read-only.

The fault-injecting soak (``python -m bench chaos``) compares minigate's books with the
provider's: which orders the shopper paid, and every refund the provider accepted, with the
``reference`` it was sent under (Latipay's refunds carry minigate's refund number there).
Mounted on the standalone ``minigate sandbox`` only; it changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from minigate.sandbox.world import SandboxWorld


def ledger(world: SandboxWorld) -> dict[str, Any]:
    """Every Latipay order: amount, status, refunded total and each accepted refund."""
    return {"latipay": [
        {"merchant_reference": o.merchant_reference, "order_id": o.order_id,
         "amount_minor": o.amount_minor, "currency": o.currency, "status": o.status,
         "refunded_minor": o.refunded_minor,
         "refunds": [{"reference": ref, "amount_minor": minor} for ref, minor in o.refunds]}
        for o in list(world.latipay.orders.values())
    ]}


def ledger_router(world: SandboxWorld) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox: control"])

    async def read_ledger() -> dict[str, Any]:
        return ledger(world)

    router.add_api_route("/_ledger", read_ledger, methods=["GET"])
    return router
