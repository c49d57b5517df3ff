"""Figures derived from a run's phases: minigate/baseline ratios, CPU per operation against
the crypto floor, and the issue's targets with a met/miss verdict each.

Everything here is computed from the results dict alone, so ``python -m bench report`` can
redo it and tests can check the verdicts on a synthetic result.
"""

from __future__ import annotations

from typing import Any

OPS = ("checkout", "notification")
RSS_LIMIT_MB = 250.0
#: "flat": at the second half's growth rate, RSS would stay under RSS_LIMIT_MB this long.
FLAT_HORIZON_H = 24.0


def _closed(phases: list[dict[str, Any]], provider: str, db: str, op: str,
            server: str) -> dict[str, Any] | None:
    for p in phases:
        if (p["suite"], p["mode"], p.get("provider"), p["db"], p["op"], p["server"]) == (
                "core", "closed", provider, db, op, server):
            return p
    return None


def _keys(phases: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(provider, db) pairs of the core suite, in run order."""
    return list(dict.fromkeys((p.get("provider", ""), p["db"]) for p in phases
                              if p["suite"] == "core"))


def ratios(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for provider, db in _keys(phases):
        for op in OPS:
            m = _closed(phases, provider, db, op, "minigate")
            b = _closed(phases, provider, db, op, "baseline")
            if m and b and b["throughput"]:
                out.append({"provider": provider, "db": db, "op": op,
                            "minigate": m["throughput"], "baseline": b["throughput"],
                            "ratio": m["throughput"] / b["throughput"],
                            "minigate_cpu_ms": m["cpu_ms_per_op"],
                            "baseline_cpu_ms": b["cpu_ms_per_op"]})
    return out


def cpu_vs_floor(phases: list[dict[str, Any]],
                 crypto: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """minigate's server CPU per operation (closed loop) ÷ the crypto floor of that operation."""
    floors = {(c["provider"], c["op"]): c for c in crypto}
    out = []
    for provider, db in _keys(phases):
        for op in OPS:
            m = _closed(phases, provider, db, op, "minigate")
            floor = floors.get((provider, op))
            if m is None or floor is None:
                continue
            us, cpu = floor.get("us_per_op"), m["cpu_ms_per_op"]
            out.append({"provider": provider, "db": db, "op": op, "cpu_ms": cpu,
                        "floor_us": us, "sim_us": floor.get("sim_us_per_op"),
                        "ratio": cpu * 1000 / us if us and cpu else None})
    return out


def _row(target: str, scope: str, value: float | None, threshold: str, met: bool | None,
         shown: str | None = None) -> dict[str, Any]:
    verdict = "not measured" if met is None else "met" if met else "miss"
    text = shown if shown is not None else ("–" if value is None else f"{value:.2f}")
    return {"target": target, "scope": scope, "value": value, "shown": text,
            "threshold": threshold, "verdict": verdict}


def _missing(target: str, threshold: str) -> list[dict[str, Any]]:
    return [_row(target, "–", None, threshold, None)]


def _latipay_checkout(result: dict[str, Any]) -> list[dict[str, Any]]:
    name, rows = "Latipay checkout ≥ 0.8× baseline (saturation ops/s)", []
    for r in result.get("ratios") or []:
        if r.get("provider", result.get("provider")) == "latipay" and r["op"] == "checkout":
            rows.append(_row(name, r["db"], r["ratio"], "≥ 0.80", r["ratio"] >= 0.8,
                             f"{r['ratio']:.2f}×"))
    return rows or _missing(name, "≥ 0.80")


def _half_load_p99(result: dict[str, Any], op: str, limit_ms: float) -> list[dict[str, Any]]:
    name, rows = f"{op} p99 < {limit_ms:.0f} ms at half saturation (open loop)", []
    for p in result["phases"]:
        if (p["suite"], p["server"], p["op"], p["mode"], p.get("fraction")) == (
                "core", "minigate", op, "open", 0.5):
            rows.append(_row(name, f"{p.get('provider')} {p['db']}", p["p99_ms"],
                             f"< {limit_ms:.0f} ms", p["p99_ms"] < limit_ms,
                             f"{p['p99_ms']:.1f} ms"))
    return rows or _missing(name, f"< {limit_ms:.0f} ms")


def _notification_rate(result: dict[str, Any]) -> list[dict[str, Any]]:
    name, rows = "notifications ≥ 1,000/s on one API process (saturation)", []
    for p in result["phases"]:
        if (p["suite"], p["server"], p["op"], p["mode"]) == (
                "core", "minigate", "notification", "closed"):
            rows.append(_row(name, f"{p.get('provider')} {p['db']}", p["throughput"],
                             "≥ 1,000/s", p["throughput"] >= 1000,
                             f"{p['throughput']:,.0f}/s"))
    return rows or _missing(name, "≥ 1,000/s")


def _per_order_cost(result: dict[str, Any]) -> list[dict[str, Any]]:
    name, rows = "per-order CPU with 1 M orders ≤ 1.2× with 10 k (rows suite)", []
    phases = [p for p in result["phases"] if p["suite"] == "rows" and p.get("cpu_ms_per_op")]
    sizes = sorted({p["history_rows"] for p in phases})
    if len(sizes) >= 2:
        for op in OPS:
            small = [p for p in phases if p["op"] == op and p["history_rows"] == sizes[0]]
            large = [p for p in phases if p["op"] == op and p["history_rows"] == sizes[-1]]
            if small and large:
                ratio = large[0]["cpu_ms_per_op"] / small[0]["cpu_ms_per_op"]
                rows.append(_row(name, f"{op} ({sizes[-1]:,} / {sizes[0]:,})", ratio, "≤ 1.20",
                                 ratio <= 1.2, f"{ratio:.2f}×"))
    return rows or _missing(name, "≤ 1.20")


def _rss_limit(result: dict[str, Any]) -> list[dict[str, Any]]:
    name = f"RSS < {RSS_LIMIT_MB:.0f} MB (every minigate process, whole run)"
    rss = [s["max"] for label, s in (result.get("rss") or {}).items()
           if label.startswith("minigate")]
    if not rss:
        return _missing(name, f"< {RSS_LIMIT_MB:.0f} MB")
    peak = max(rss)
    return [_row(name, "max", peak, f"< {RSS_LIMIT_MB:.0f} MB", peak < RSS_LIMIT_MB,
                 f"{peak:.1f} MB")]


def _rss_flat(result: dict[str, Any]) -> list[dict[str, Any]]:
    name = "RSS flat (soak: second-half growth keeps it < 250 MB for 24 h)"
    rows = []
    for s in result.get("soaks") or []:
        trend = s["rss"]
        if not trend.get("samples"):
            continue
        horizon = trend["last_mb"] + trend["kb_per_min"] * 60 * FLAT_HORIZON_H / 1024
        scope = f"{s['provider']} {s['db']} {s['duration_s']:.0f} s {s.get('mode', 'sandbox')}"
        rows.append(_row(name, scope,
                         trend["kb_per_min"], f"24 h projection < {RSS_LIMIT_MB:.0f} MB",
                         horizon < RSS_LIMIT_MB,
                         f"{trend['kb_per_min']:+.0f} KB/min → {horizon:,.0f} MB in 24 h"))
    return rows or _missing(name, f"24 h projection < {RSS_LIMIT_MB:.0f} MB")


def _wechat_floor(result: dict[str, Any]) -> list[dict[str, Any]]:
    name, rows = "WeChat Pay v3 checkout CPU/op ≤ 1.5× its crypto floor", []
    for r in result.get("cpu_vs_floor") or []:
        if r["provider"] == "wechatpay" and r["op"] == "checkout" and r["ratio"] is not None:
            rows.append(_row(name, r["db"], r["ratio"], "≤ 1.50", r["ratio"] <= 1.5,
                             f"{r['cpu_ms']:.2f} ms / {r['floor_us'] / 1000:.2f} ms = "
                             f"{r['ratio']:.1f}×"))
    return rows or _missing(name, "≤ 1.50")


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue, computed from this run's own figures."""
    return (_latipay_checkout(result) + _half_load_p99(result, "checkout", 50)
            + _notification_rate(result) + _half_load_p99(result, "notification", 20)
            + _per_order_cost(result) + _rss_limit(result) + _rss_flat(result)
            + _wechat_floor(result))
