"""The Overview's bar chart of paid orders per day, as SVG geometry for the template.

Drawn on the server with presentation attributes only (no inline styles or scripts), so
the page's Content-Security-Policy holds and it needs nothing from the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

WIDTH, HEIGHT = 640, 200
LEFT, BOTTOM, TOP = 32, 24, 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    day: date
    label: str
    title: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    max_count: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: int = HEIGHT - BOTTOM
    top: int = TOP


def bar_chart(days: list[dict[str, Any]]) -> Chart:
    """One bar per day; height by count of paid orders, the totals in each bar's title."""
    top = max([d["count"] for d in days] + [1])
    slot = (WIDTH - LEFT) / max(len(days), 1)
    plot = HEIGHT - BOTTOM - TOP
    bars = []
    for i, d in enumerate(days):
        h = plot * d["count"] / top
        bars.append(Bar(x=round(LEFT + i * slot + slot * 0.15, 1),
                        y=round(HEIGHT - BOTTOM - h, 1), width=round(slot * 0.7, 1),
                        height=round(h, 1), count=d["count"], day=d["day"],
                        label=d["day"].strftime("%d"),
                        title=f"{d['day'].isoformat()}: {d['count']} paid ({d['totals']})"))
    return Chart(bars=bars, max_count=top)
