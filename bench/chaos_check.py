"""The fault soak's verdict: minigate's books against the provider's and the merchant's.

Pure functions over plain records, so the checker is tested with fabricated ledgers
(``tests/test_bench_chaos.py``) and the soak only has to collect the facts:

* the simulator's ledger (``GET /sandbox/_ledger``): every provider order, its status and
  every refund it accepted with the ``reference`` it came with;
* minigate's database, read directly: orders with their payment's provider number, refunds,
  and the events it owes the merchant;
* what the harness saw: every event id its webhook endpoint acknowledged, and every 5xx.

The harness sends each refund with ``reason = "chaos <Idempotency-Key>"``; minigate puts its
refund number and then the reason in Latipay's ``reference``, so the provider's ledger says
which key and which refund number each accepted refund came from.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: minigate order states in which the shopper's money was taken
PAID_STATES = frozenset({"paid", "partially_refunded", "refunded", "paid_after_close"})
OPEN_REFUND = frozenset({"pending", "unknown"})
#: marks the Idempotency-Key in a refund's reason (and so in the provider's reference)
KEY_TAG = "chaos"


@dataclass
class SimOrder:
    """One order at the simulated provider (Latipay: keyed by minigate's provider number)."""

    provider_order_no: str
    amount_minor: int
    status: str  # "pending" | "paid" | "canceled"
    refunded_minor: int = 0
    refunds: list[tuple[str, int]] = field(default_factory=list)  # (reference, minor units)


@dataclass
class MgOrder:
    id: str
    merchant_reference: str
    amount_minor: int
    status: str
    refunded_minor: int = 0
    refund_reserved_minor: int = 0
    provider_order_no: str | None = None  # its payment's, if it has one


@dataclass
class MgRefund:
    id: str
    order_id: str
    provider_refund_no: str
    amount_minor: int
    status: str
    reason: str = ""


@dataclass
class Facts:
    sim: list[SimOrder] = field(default_factory=list)
    orders: list[MgOrder] = field(default_factory=list)
    refunds: list[MgRefund] = field(default_factory=list)
    #: event id -> type, for every event minigate must deliver to the merchant
    deliverable: dict[str, str] = field(default_factory=dict)
    #: event id -> how many times the merchant endpoint acknowledged it (2xx)
    received: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    #: every 5xx the harness got: {"status", "path" (e.g. ``POST /v1/orders``), "code", …}
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    #: an Idempotency-Key replayed with a different order or refund than it first gave
    replay_mismatches: list[str] = field(default_factory=list)


@dataclass
class Row:
    name: str
    count: int
    violation: bool  # a non-zero count breaks the promise (False: reported only)
    details: list[str] = field(default_factory=list)
    more: int = 0  # details left out

    @property
    def failed(self) -> bool:
        return self.violation and self.count > 0


def refund_key(reference: str) -> str | None:
    """The Idempotency-Key in a provider refund reference (``"<no> chaos <key>"``)."""
    parts = reference.split()
    for i, part in enumerate(parts[:-1]):
        if part == KEY_TAG:
            return parts[i + 1]
    return None


def refund_number(reference: str) -> str:
    return reference.split(" ", 1)[0]


def _repeated(values: Iterable[str]) -> dict[str, int]:
    return {v: n for v, n in Counter(values).items() if n > 1}


def _row(name: str, items: list[str], violation: bool = True, count: int | None = None) -> Row:
    return Row(name, len(items) if count is None else count, violation, items[:10],
               max(0, len(items) - 10))


def check(f: Facts) -> list[Row]:
    """One row per invariant; ``violation`` rows with a count are failures."""
    by_no = {o.provider_order_no: o for o in f.orders if o.provider_order_no}
    sim_paid = [s for s in f.sim if s.status == "paid"]

    lost = []
    for s in sim_paid:
        order = by_no.get(s.provider_order_no)
        if order is None or order.status not in PAID_STATES:
            lost.append(f"{s.provider_order_no}: paid at the provider, minigate has "
                        f"{order.id + ' ' + order.status if order else 'no such payment'}")

    paid_refs = [by_no[s.provider_order_no].merchant_reference for s in sim_paid
                 if s.provider_order_no in by_no]
    twice_paid = [f"{ref}: paid {n} times" for ref, n in _repeated(paid_refs).items()]
    twice_created = [
        f"{ref}: {n} orders, " + ", ".join(f"{o.id} {o.status}" for o in f.orders
                                           if o.merchant_reference == ref)
        for ref, n in _repeated(o.merchant_reference for o in f.orders).items()]

    accepted = [ref for s in f.sim for ref, _ in s.refunds]
    per_key = [
        f"{key}: refunded {n} times, as " + ", ".join(
            refund_number(a) for a in accepted if refund_key(a) == key)
        for key, n in _repeated(k for k in map(refund_key, accepted) if k).items()]
    per_number = [f"{no}: refunded {n} times" for no, n in
                  _repeated(map(refund_number, accepted)).items()]

    sim_by_no = {s.provider_order_no: s for s in f.sim}
    succeeded: dict[str, int] = defaultdict(int)
    for r in f.refunds:
        if r.status == "succeeded":
            succeeded[r.order_id] += r.amount_minor
    mismatch, above = [], []
    for o in f.orders:
        found = sim_by_no.get(o.provider_order_no or "")
        mg_net = (o.amount_minor if o.status in PAID_STATES else 0) - o.refunded_minor
        sim_net = (found.amount_minor if found and found.status == "paid" else 0) - (
            found.refunded_minor if found else 0)
        if mg_net != sim_net:
            mismatch.append(f"{o.id}: minigate {mg_net}, provider {sim_net} (minor units)")
        elif succeeded[o.id] != o.refunded_minor:
            mismatch.append(f"{o.id}: refunded_minor {o.refunded_minor}, succeeded refunds "
                            f"{succeeded[o.id]}")
        if max(o.refunded_minor, o.refund_reserved_minor, succeeded[o.id]) > o.amount_minor:
            above.append(f"{o.id}: refunded {o.refunded_minor} / reserved "
                         f"{o.refund_reserved_minor} of {o.amount_minor}")
    for s in f.sim:
        if s.refunded_minor > s.amount_minor or sum(m for _, m in s.refunds) > s.amount_minor:
            above.append(f"{s.provider_order_no}: provider refunded {s.refunded_minor} of "
                         f"{s.amount_minor}")

    open_refunds = [f"{r.id} ({r.provider_refund_no}) {r.status}" for r in f.refunds
                    if r.status in OPEN_REFUND]
    undelivered = [f"{eid} {etype}" for eid, etype in sorted(f.deliverable.items())
                   if f.received[eid] == 0]
    duplicates = [f"{eid} ×{n}" for eid, n in sorted(f.received.items()) if n > 1]
    non503 = Counter(f"{e['status']} {e['path']} {e.get('code', '')}".rstrip()
                     for e in f.server_errors if e["status"] != 503)
    errors = [f"{what} ×{n}" for what, n in non503.most_common()]

    return [
        _row("paid at the provider, not in minigate (lost)", lost),
        _row("orders paid twice (per merchant_reference)", twice_paid),
        _row("orders created twice (per merchant_reference)", twice_created),
        _row("refunds sent twice (per Idempotency-Key)", per_key),
        _row("refunds sent twice (per provider refund number)", per_number),
        _row("ledger mismatch: Σ paid − Σ refunded vs provider", mismatch),
        _row("refunds above the paid amount", above),
        _row("refunds still pending/unknown after settling", open_refunds),
        _row("replays answering another order/refund", list(f.replay_mismatches)),
        _row("merchant events never delivered", undelivered),
        _row("merchant events delivered more than once", duplicates, violation=False),
        Row("webhooks with a bad signature", f.bad_signatures, True),
        _row("5xx other than 503", errors, count=sum(non503.values())),
    ]


def render(rows: list[Row]) -> str:
    """The verdict table (plain text, also valid Markdown)."""
    lines = ["| invariant | count | verdict |", "|---|---:|---|"]
    for r in rows:
        verdict = "VIOLATION" if r.failed else ("ok" if r.violation else "reported")
        lines.append(f"| {r.name} | {r.count} | {verdict} |")
    for r in rows:
        if r.count and r.details:
            lines.append(f"\n{r.name}:")
            lines += [f"  {d}" for d in r.details]
            if r.more:
                lines.append(f"  … and {r.more} more")
    return "\n".join(lines)
