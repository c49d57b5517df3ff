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
        # the load generator's event-loop holds over 25 / 100 ms (runs from before: absent)
        "client_holds": raw.get("client_holds"), "client_max_hold_ms": raw.get("client_max_hold_ms"),
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}"
    return str(v)


def normalise(result: dict[str, Any]) -> dict[str, Any]:
    """Fill what older results JSON lack (one provider per run) and the derived figures."""
    from bench import targets

    default = result.get("provider", "latipay")
    for p in result.get("phases", []):
        p.setdefault("provider", default)
    result.setdefault("providers", list(dict.fromkeys(p["provider"] for p in result["phases"]))
                      or [default])
    for c in result.get("crypto_floor", []):
        c.setdefault("provider", default)
    result["ratios"] = targets.ratios(result["phases"])
    result["cpu_vs_floor"] = targets.cpu_vs_floor(result["phases"], result.get("crypto_floor", []))
    result["targets"] = targets.targets(result)
    return result


def _phase_table(phases: list[dict[str, Any]]) -> list[str]:
    out = ["| suite | db | server | op | mode | offered/s | ops/s | p50 ms | p95 ms | "
           "p99 ms | errors | server CPU ms/op | DB CPU ms/op | WAL KB/op | "
           "checkpoints (PostgreSQL: ended, buffers, sync ms; SQLite: beside / write path) | "
           "server CPU % | client CPU % | "
           "RSS MB | full GCs | loop holds > 25 / 100 ms | load generator holds > 25 / 100 ms "
           "(longest ms) | disk flushes > 25 ms (longest ms) | steal % | core speed (probe ms) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in phases:
        offered = "closed" if p["mode"] == "closed" else _fmt(p["rate"])
        suite = p["suite"]
        if suite == "workers":
            suite += f" ({p['processes']} proc)"
        if "history_rows" in p:
            suite += f" ({p['history_rows']:,} orders)"
        if "round" in p:
            suite += f" (round {p['round']})"
        out.append(
            f"| {suite} | {p['db']} | {p['server']} | {p['op']} | "
            f"{p['mode']}{'' if p['mode'] == 'open' else ' x' + str(p['concurrency'])} | "
            f"{offered} | {_fmt(p['throughput'])} | {_fmt(p['p50_ms'])} | "
            f"{_fmt(p['p95_ms'])} | {_fmt(p['p99_ms'])} | {p['errors'] + p['dropped']} | "
            f"{_fmt(p['cpu_ms_per_op'])} | {_fmt(p.get('db_cpu_ms_per_op'))} | "
            f"{_fmt(p.get('wal_kb_per_op'))} | {_checkpoints(p)} | "
            f"{_fmt(p['server_cpu_pct'])} | "
            f"{_fmt(p['client_cpu_pct'])} | {_fmt(p['rss_mb'])} | "
            f"{_fmt(p.get('full_gcs'))} | {_holds(p)} | {_client_holds(p)} | {_flushes(p)} | "
            f"{_fmt(p.get('steal_pct', '–'))} | {_fmt(p.get('core_speed_ms'))} |")
    return out


def _holds(phase: dict[str, Any]) -> str:
    """The server's event-loop holds over 25 ms and over 100 ms during a phase (``–``
    where it could not say, or in a run from before they were recorded)."""
    if phase.get("loop_holds_25ms") is None:
        return "–"
    return f"{phase['loop_holds_25ms']} / {phase['loop_holds_100ms']}"


def _client_holds(phase: dict[str, Any]) -> str:
    """The load generator's event-loop holds over 25 and 100 ms during a phase, and the
    longest (``–`` in a run from before they were recorded)."""
    if phase.get("client_holds") is None:
        return "–"
    over_25, over_100 = phase["client_holds"]
    return f"{over_25} / {over_100} ({_fmt(phase['client_max_hold_ms'])})"


def _flushes(phase: dict[str, Any]) -> str:
    """The bench's disk-flush probes over 25 ms during a phase and the longest (``–`` in a
    run from before they were recorded)."""
    if phase.get("flushes") is None:
        return "–"
    return f"{phase['flushes_over_25ms']} ({_fmt(phase['longest_flush_ms'])})"


def _checkpoints(phase: dict[str, Any]) -> str:
    """PostgreSQL's checkpoints during a phase: how many ended, the buffers the checkpointer
    wrote, its ``fsync`` milliseconds. On SQLite, minigate's WAL checkpoints: how many ran
    beside the writes and how many on the write path (a write batch caught up with a long
    WAL). ``–`` for SQLite's baseline, or in a run from before they were recorded."""
    if phase.get("sqlite_checkpoints") is not None:
        return f"{phase['sqlite_checkpoints']} / {phase['sqlite_checkpoints_write_path']}"
    if phase.get("checkpoints") is None:
        return "–"
    return (f"{phase['checkpoints']}, {phase['checkpoint_buffers']:,}, "
            f"{_fmt(phase['checkpoint_sync_ms'])}")


def _ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    """Ratios: the geometric mean of the rounds' (each round's in brackets), adjusted for
    the core's speed where the run measured it, and raw; ops/s and CPU: each server's
    median."""
    out = ["| db | op | minigate ops/s | baseline ops/s | ratio (rounds) | raw ratio (rounds) "
           "| core speed, minigate's phase ÷ the baseline's | minigate CPU ms/op | "
           "baseline CPU ms/op | minigate DB CPU ms/op | baseline DB CPU ms/op |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]

    def each(values: list[float]) -> str:
        return f" ({', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""

    for r in rows:
        raw = (f"{r['raw_ratio']:.2f}{each(r['raw_rounds'])}" if r.get("adjusted")
               else "same")
        factors = ", ".join(f"{f:.2f}" for f in r.get("speed_factors") or []) or "–"
        out.append(f"| {r['db']} | {r['op']} | {_fmt(r['minigate'])} | {_fmt(r['baseline'])} | "
                   f"{r['ratio']:.2f}{each(r.get('rounds') or [])} | {raw} | {factors} | "
                   f"{_fmt(r['minigate_cpu_ms'])} | "
                   f"{_fmt(r['baseline_cpu_ms'])} | {_fmt(r.get('minigate_db_cpu_ms'))} | "
                   f"{_fmt(r.get('baseline_db_cpu_ms'))} |")
    return out


def _floor_table(rows: list[dict[str, Any]], crypto: list[dict[str, Any]]) -> list[str]:
    covers = {(c["provider"], c["op"]): c.get("covers", "") for c in crypto}
    out = ["| db | op | minigate server CPU ms/op | crypto floor µs (minigate) | "
           "CPU ÷ floor | simulator crypto µs (same process) | floor covers |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"**{r['ratio']:.1f}×**"
        out.append(f"| {r['db']} | {r['op']} | {_fmt(r['cpu_ms'])} | {_fmt(r['floor_us'])} | "
                   f"{ratio} | {_fmt(r['sim_us'])} | {covers.get((r['provider'], r['op']))} |")
    return out


def _provider_section(result: dict[str, Any], name: str) -> list[str]:
    out = ["", f"## Provider: {name}"]
    phases = [p for p in result["phases"] if p["provider"] == name]
    if phases:
        out += ["", "### Phases", ""] + _phase_table(phases)
    ratios = [r for r in result.get("ratios", []) if r["provider"] == name]
    if ratios:
        out += ["", "### minigate / baseline (closed-loop saturation, same run)", ""]
        out += _ratio_table(ratios)
    floor = [r for r in result.get("cpu_vs_floor", []) if r["provider"] == name]
    if floor:
        out += ["", "### Server CPU per operation vs the crypto floor", ""]
        out += _floor_table(floor, result.get("crypto_floor", []))
    return out


def _targets_section(rows: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Targets (computed from this run's own figures)", "",
           "| target | scope | this run | threshold | verdict |", "|---|---|---|---|---|"]
    for t in rows:
        verdict = {"met": "met", "miss": "**miss**"}.get(t["verdict"], t["verdict"])
        out.append(f"| {t['target']} | {t['scope']} | {t['shown']} | {t['threshold']} | "
                   f"{verdict} |")
    return out


def _soak_section(soaks: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Memory soak (one minigate process, fixed rate)", "",
           "| provider | minigate mode | db | seconds | ops/s per op | ops | errors | CPU ms/op | "
           "RSS first | last | min | max MB | growth, 2nd half | per op |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in soaks:
        r = s["rss"]
        if not r.get("samples"):
            continue
        out.append(f"| {s['provider']} | {s.get('mode', 'sandbox')} | {s['db']} | "
                   f"{r['seconds']:.0f} | {s['rate_per_op']:g} | "
                   f"{s['ops']:,} | {s['errors']} | {_fmt(s['cpu_ms_per_op'])} | "
                   f"{r['first_mb']} | {r['last_mb']} | {r['min_mb']} | {r['max_mb']} | "
                   f"{r['kb_per_min']:+.1f} KB/min | {_fmt(r['kb_per_op'])} KB |")
    for s in soaks:
        points = ", ".join(f"{t:.0f}s {mb:.1f}" for t, mb in s["rss"].get("series", [])[::6])
        out += ["", f"RSS (MB) {s['provider']} {s['db']}, every 30 s: {points}"]
    return out


def _crypto_section(crypto: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Crypto floor (signatures alone, in-process timeit, best of 3)", "",
           "| provider | op | minigate µs/op | simulator µs/op (sandbox, same process) | covers |",
           "|---|---|---|---|---|"]
    for c in crypto:
        out.append(f"| {c['provider']} | {c['op']} | {_fmt(c.get('us_per_op'))} | "
                   f"{_fmt(c.get('sim_us_per_op'))} | {c.get('covers', '')} |")
    return out


def markdown(result: dict[str, Any]) -> str:
    out = [f"# minigate benchmark {result['timestamp']}", "",
           f"Machine: {result['machine']}. The load generator, the servers and PostgreSQL "
           "share its cores, so absolute numbers depend on the machine and on whatever else "
           "ran (see the load average); ratios taken in the same run are the meaningful "
           "part. \"steal %\" is the share of the machine's CPU time its host gave to other "
           "guests during a phase: a phase with much of it measured a slower machine. \"full "
           "GCs\" is how many full (generation-2) collections the server processes ran "
           "during the phase (– where a server cannot say). \"DB CPU\" is the CPU of the "
           "machine's PostgreSQL processes during a phase, per operation (– on SQLite, whose "
           "work is in the server's own CPU). \"core speed\" (core suite) is how long a "
           "fixed piece of Python took on the core the measured server's event loop was "
           "pinned to, averaged over the phase (`bench/speed.py`): this machine's cores "
           "change speed by up to 2× every few seconds, so each round's minigate ÷ "
           "baseline ratio is adjusted for the two phases' core speeds, and the targets "
           "judge the adjusted ratios; the raw ones are shown beside them.", "",
           f"Command: `{result['command']}`"]
    if result.get("baseline_create"):
        out += ["", "**Baseline with the create request** (`--baseline-create`): the "
                "baseline's checkout also took the merchant's create request (`POST "
                "/bare/orders`, one `INSERT`; its checkout then read the order's amount "
                "back), so both servers took three requests per checkout. The checkout "
                "targets below are judged against that baseline, not the issue's."]
    if result.get("targets"):
        out += _targets_section(result["targets"])
    for name in result.get("providers", []):
        out += _provider_section(result, name)
    if result.get("soaks"):
        out += _soak_section(result["soaks"])
    if result.get("crypto_floor"):
        out += _crypto_section(result["crypto_floor"])
    if result.get("verification"):
        out += ["", "## Verification", ""]
        out += [f"- {v}" for v in result["verification"]]
    if result.get("rss"):
        out += ["", "## Server RSS over the run (MB)", "", "| server | first | min | max | last |",
                "|---|---|---|---|---|"]
        for label, s in result["rss"].items():
            out.append(f"| {label} | {s['first']} | {s['min']} | {s['max']} | {s['last']} |")
    for name, prof in result.get("profiles", {}).items():
        out += _profile_section(name, prof)
    if result.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(out) + "\n"


def _profile_section(name: str, prof: dict[str, Any]) -> list[str]:
    out = ["", f"## Profile: {name} ({prof['samples']} GIL samples, `{prof['file']}`)", "",
           "| layer | % of server CPU |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in prof["layers_pct"]]
    out += ["", "| minigate function (inclusive, greenlet ORM stacks excluded) | % |",
            "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in prof["minigate_inclusive_pct"][:15]]
    return out


def rss_summary(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    by: dict[str, list[float]] = {}
    for s in samples:
        if float(s["rss_mb"]) > 0:
            by.setdefault(str(s["server"]), []).append(float(s["rss_mb"]))
    return {k: {"first": v[0], "min": min(v), "max": max(v), "last": v[-1], "samples": len(v)}
            for k, v in by.items()}


def _points(core: list[dict[str, Any]], db: str, op: str, provider: str,
            server: str) -> list[dict[str, Any]]:
    pts = [p for p in core if (p["db"], p["op"], p["provider"], p["server"]) ==
           (db, op, provider, server)]
    return sorted(pts, key=lambda p: p["throughput"] if p["mode"] == "closed" else p["rate"])


def _plot_axes(ax: Any, core: list[dict[str, Any]], db: str, op: str,
               providers: list[str]) -> None:
    """One provider: p50 and p99 per server. Several: p99 only, one colour per provider."""
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for n, provider in enumerate(providers):
        for server in ("minigate", "baseline"):
            pts = _points(core, db, op, provider, server)
            if not pts:
                continue
            x = [p["rate"] if p["mode"] == "open" else p["throughput"] for p in pts]
            if len(providers) == 1:
                colour = colours[0] if server == "minigate" else colours[1]
                ax.plot(x, [p["p50_ms"] for p in pts], "o-", color=colour, label=f"{server} p50")
                ax.plot(x, [p["p99_ms"] for p in pts], "s--", color=colour,
                        label=f"{server} p99")
            else:
                style = "s-" if server == "minigate" else "o:"
                ax.plot(x, [p["p99_ms"] for p in pts], style, color=colours[n % len(colours)],
                        label=f"{provider} {server} p99")
    ax.set_title(f"{op} on {db}")
    ax.set_xlabel("offered load (ops/s; closed-loop point = achieved)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot(result: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no PNG, data in JSON"
    core = [p for p in result["phases"] if p["suite"] == "core"]
    if not core:
        return "no core phases: no PNG"
    dbs = sorted({p["db"] for p in core})
    providers = list(dict.fromkeys(p["provider"] for p in core))
    ops = ["checkout", "notification"]
    fig, axes = plt.subplots(len(ops), len(dbs), figsize=(6 * len(dbs), 4.2 * len(ops)),
                             squeeze=False)
    for row, op in enumerate(ops):
        for col, db in enumerate(dbs):
            _plot_axes(axes[row][col], core, db, op, providers)
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
    stem = RESULTS / str(result["timestamp"])
    normalise(result)
    result.pop("plot", None)
    note = plot(result, stem.with_suffix(".png"))
    if note:
        if note not in result.setdefault("notes", []):
            result["notes"].append(note)
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
