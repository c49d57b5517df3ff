"""Results: ``bench/results/<timestamp>.json``, ``<timestamp>.md`` (+ ``latest.md``) and a
PNG of latency against offered load."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(raw["latencies"])
    ok = len(lat)
    return {
        "ok": ok, "errors": raw["errors"], "dropped": raw["dropped"],
        "error_samples": raw["error_samples"], "elapsed_s": round(raw["elapsed"], 2),
        "throughput": round(ok / raw["elapsed"], 1) if raw["elapsed"] else 0.0,
        "p50_ms": round(1000 * percentile(lat, 0.50), 2),
        "p95_ms": round(1000 * percentile(lat, 0.95), 2),
        "p99_ms": round(1000 * percentile(lat, 0.99), 2),
        "max_ms": round(1000 * lat[-1], 2) if lat else float("nan"),
        "client_cpu_pct": raw["client_cpu_pct"], "pool_exhausted": raw["pool_exhausted"],
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}"
    return str(v)


def markdown(result: dict[str, Any]) -> str:
    out = [f"# minigate benchmark {result['timestamp']}", "",
           f"Machine: {result['machine']}. **Shared, loaded machine** (other test suites were "
           "running): absolute numbers are pessimistic and noisy; ratios taken in the same run "
           "are the meaningful part.", "",
           f"Command: `{result['command']}`", ""]
    phases = result["phases"]
    if phases:
        out += ["## Phases", "",
                "| suite | db | server | op | mode | offered/s | ops/s | p50 ms | p95 ms | "
                "p99 ms | errors | server CPU ms/op | server CPU % | client CPU % | RSS MB |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in phases:
            offered = "closed" if p["mode"] == "closed" else _fmt(p["rate"])
            suite = p["suite"]
            if suite == "workers":
                suite += f" ({p['processes']} proc)"
            if "history_rows" in p:
                suite += f" ({p['history_rows']:,} orders)"
            out.append(
                f"| {suite} | {p['db']} | {p['server']} | {p['op']} | "
                f"{p['mode']}{'' if p['mode'] == 'open' else ' x' + str(p['concurrency'])} | "
                f"{offered} | {_fmt(p['throughput'])} | {_fmt(p['p50_ms'])} | "
                f"{_fmt(p['p95_ms'])} | {_fmt(p['p99_ms'])} | {p['errors'] + p['dropped']} | "
                f"{_fmt(p['cpu_ms_per_op'])} | {_fmt(p['server_cpu_pct'])} | "
                f"{_fmt(p['client_cpu_pct'])} | {_fmt(p['rss_mb'])} |")
    if result.get("ratios"):
        out += ["", "## minigate / baseline (closed-loop saturation, same run)", "",
                "| db | op | minigate ops/s | baseline ops/s | ratio | minigate CPU ms/op | "
                "baseline CPU ms/op |", "|---|---|---|---|---|---|---|"]
        for r in result["ratios"]:
            out.append(f"| {r['db']} | {r['op']} | {_fmt(r['minigate'])} | {_fmt(r['baseline'])} | "
                       f"{r['ratio']:.2f} | {_fmt(r['minigate_cpu_ms'])} | "
                       f"{_fmt(r['baseline_cpu_ms'])} |")
    if result.get("crypto_floor"):
        out += ["", "## Crypto floor (signatures alone, in-process timeit)", "",
                "| provider | op | µs/op |", "|---|---|---|"]
        for c in result["crypto_floor"]:
            out.append(f"| {c['provider']} | {c['op']} | {c['us_per_op']:.1f} |")
    if result.get("verification"):
        out += ["", "## Verification", ""]
        out += [f"- {v}" for v in result["verification"]]
    if result.get("rss"):
        out += ["", "## Server RSS over the run (MB)", "", "| server | first | min | max | last |",
                "|---|---|---|---|---|"]
        for label, s in result["rss"].items():
            out.append(f"| {label} | {s['first']} | {s['min']} | {s['max']} | {s['last']} |")
    for name, prof in result.get("profiles", {}).items():
        out += ["", f"## Profile: {name} ({prof['samples']} GIL samples, `{prof['file']}`)", "",
                "| layer | % of server CPU |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in prof["layers_pct"]]
        out += ["", "| minigate function (inclusive, greenlet ORM stacks excluded) | % |",
                "|---|---|"]
        out += [f"| `{k}` | {v} |" for k, v in prof["minigate_inclusive_pct"][:15]]
    if result.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(out) + "\n"


def rss_summary(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    by: dict[str, list[float]] = {}
    for s in samples:
        if float(s["rss_mb"]) > 0:
            by.setdefault(str(s["server"]), []).append(float(s["rss_mb"]))
    return {k: {"first": v[0], "min": min(v), "max": max(v), "last": v[-1], "samples": len(v)}
            for k, v in by.items()}


def plot(result: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no PNG, data in JSON"
    core = [p for p in result["phases"] if p["suite"] == "core"]
    dbs = sorted({p["db"] for p in core})
    ops = ["checkout", "notification"]
    if not core:
        return "no core phases: no PNG"
    fig, axes = plt.subplots(len(ops), len(dbs), figsize=(6 * len(dbs), 4.2 * len(ops)),
                             squeeze=False)
    for row, op in enumerate(ops):
        for col, db in enumerate(dbs):
            ax = axes[row][col]
            for server, colour in (("minigate", "tab:blue"), ("baseline", "tab:orange")):
                pts = sorted((p for p in core if p["db"] == db and p["op"] == op
                              and p["server"] == server),
                             key=lambda p: p["throughput"] if p["mode"] == "closed" else p["rate"])
                if not pts:
                    continue
                x = [p["rate"] if p["mode"] == "open" else p["throughput"] for p in pts]
                ax.plot(x, [p["p50_ms"] for p in pts], "o-", color=colour, label=f"{server} p50")
                ax.plot(x, [p["p99_ms"] for p in pts], "s--", color=colour,
                        label=f"{server} p99")
                sat = [p for p in pts if p["mode"] == "closed"]
                for p in sat:
                    ax.annotate("saturation", (p["throughput"], p["p99_ms"]), fontsize=7,
                                color=colour, textcoords="offset points", xytext=(-20, 6))
            ax.set_title(f"{op} on {db}")
            ax.set_xlabel("offered load (ops/s; closed-loop point = achieved)")
            ax.set_ylabel("latency (ms)")
            ax.set_yscale("log")
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("minigate vs bare baseline: latency vs offered load\n"
                 f"{result['timestamp']}, shared and loaded 2-core machine", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


IDLE = ("EpollSelector.select", "Condition.wait", "Event.wait")

#: (layer, markers in the frame's file path), first match wins, tested leaf first.
LAYERS = [
    ("logging", ("logging/",)),
    ("sandbox simulators (in-process)", ("minigate/sandbox/",)),
    ("httpx client (provider calls)", ("httpx/", "httpcore/")),
    ("SQLAlchemy (ORM + core + asyncio adapter)", ("sqlalchemy/", "greenlet")),
    ("DB driver (asyncpg / aiosqlite + sqlite3)", ("asyncpg/", "aiosqlite/", "sqlite3/")),
    ("HTTP server (uvicorn + h11)", ("uvicorn/", "h11/")),
    ("FastAPI / Starlette / pydantic", ("fastapi/", "starlette/", "anyio/", "pydantic",
                                        "annotated_types")),
    ("minigate code", ("minigate/",)),
    ("crypto / hashing", ("hmac", "hashlib", "secrets", "random.py")),
    ("json", ("json/",)),
    ("asyncio event loop + sockets", ("asyncio/", "selectors", "socket")),
]


def _layer(frames: list[str]) -> str:
    # A sample belongs to the innermost frame that is in a known layer, except that anything
    # under the simulators, httpx or logging is charged to them (they are whole sub-systems).
    for layer, markers in LAYERS[:3]:
        if any(m in f for f in frames for m in markers):
            return layer
    for frame in reversed(frames):
        for layer, markers in LAYERS[3:]:
            if any(m in frame for m in markers):
                return layer
    return "other"


def profile_summary(collapsed: Path, top: int = 30) -> dict[str, Any]:
    """Where the server's CPU goes, from py-spy's collapsed (raw) output recorded with
    ``--gil`` (only the thread holding the GIL is sampled, so shares approximate CPU).

    SQLAlchemy's asyncio layer runs ORM code in greenlets, which py-spy shows as separate
    stacks rooted at the ORM call: they count as SQLAlchemy, not as the request handler.
    """
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        raw = stack.split(";")
        names = [_short(f) for f in raw]
        if names[-1].startswith(IDLE):
            continue
        total += n
        for name in set(names):
            inclusive[name] += n
        self_[names[-1]] += n
        layers[_layer(raw)] += n

    def pct(c: Counter[str], k: int = top) -> list[tuple[str, float]]:
        return [(name, round(100 * v / total, 1)) for name, v in c.most_common(k)] if total else []

    mine = Counter({k: v for k, v in inclusive.items() if "minigate/" in k})
    return {"samples": total, "layers_pct": pct(layers, 20), "minigate_inclusive_pct": pct(mine),
            "inclusive_pct": pct(inclusive), "self_pct": pct(self_)}


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def write(result: dict[str, Any], *, latest: bool = True) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / result["timestamp"]
    result.pop("plot", None)
    note = plot(result, stem.with_suffix(".png"))
    if note and note not in result.setdefault("notes", []):
        result.setdefault("notes", []).append(note)
    else:
        result["plot"] = stem.with_suffix(".png").name
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    if result.get("plot"):
        md += f"\n![latency vs offered load]({result['plot']})\n"
    stem.with_suffix(".md").write_text(md)
    if latest:
        (RESULTS / "latest.md").write_text(md)
    return stem
