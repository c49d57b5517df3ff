"""The memory soak's analysis: RSS over a long fixed-rate run, and how fast it grows.

Pure functions over the orchestrator's RSS samples (``{"t", "server", "phase", "rss_mb"}``,
every 0.5 s), so the verdict can be recomputed from a results JSON.
"""

from __future__ import annotations

from typing import Any

#: the RSS series kept in the results (one point every this many seconds)
EVERY_S = 5.0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (y per x); 0.0 with fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def series(points: list[tuple[float, float]], every: float = EVERY_S) -> list[list[float]]:
    """One ``[seconds since start, MB]`` point every ``every`` seconds."""
    out: list[list[float]] = []
    for t, rss in points:
        if not out or t - out[-1][0] >= every:
            out.append([round(t, 1), rss])
    return out


def summarise(samples: list[dict[str, Any]], server: str, phase: str,
              ops_per_s: float) -> dict[str, Any]:
    """first/last/min/max RSS and the growth over the second half of the soak."""
    raw = [(float(s["t"]), float(s["rss_mb"])) for s in samples
           if s["server"] == server and s["phase"] == phase and float(s["rss_mb"]) > 0]
    if not raw:
        return {"samples": 0}
    t0 = raw[0][0]
    points = [(t - t0, rss) for t, rss in raw]
    second_half = [p for p in points if p[0] >= points[-1][0] / 2]
    mb_per_s = slope(second_half)
    rss = [r for _, r in points]
    return {
        "samples": len(points), "seconds": round(points[-1][0], 1), "first_mb": rss[0],
        "last_mb": rss[-1], "min_mb": min(rss), "max_mb": max(rss),
        "kb_per_min": round(mb_per_s * 1024 * 60, 1),
        "kb_per_op": round(mb_per_s * 1024 / ops_per_s, 4) if ops_per_s else None,
        "series": series(points),
    }
