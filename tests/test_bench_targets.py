"""The report's derived figures and target verdicts, on small synthetic results (no timing)."""

from __future__ import annotations

import copy
from typing import Any

from bench import report, soak, targets


def phase(provider: str, db: str, server: str, op: str, mode: str = "closed",
          **kw: Any) -> dict[str, Any]:
    row = {"suite": "core", "provider": provider, "db": db, "server": server, "op": op,
           "mode": mode, "rate": 0.0, "concurrency": 32, "processes": 1, "throughput": 100.0,
           "p50_ms": 5.0, "p95_ms": 8.0, "p99_ms": 10.0, "errors": 0, "dropped": 0,
           "cpu_ms_per_op": 1.0, "server_cpu_pct": 90.0, "client_cpu_pct": 5.0, "rss_mb": 90.0}
    return row | kw


def synthetic() -> dict[str, Any]:
    phases = [
        # Latipay checkout: 0.9× baseline on SQLite (met), 0.5× on PostgreSQL (miss)
        phase("latipay", "sqlite", "minigate", "checkout", throughput=90.0),
        phase("latipay", "sqlite", "baseline", "checkout", throughput=100.0),
        phase("latipay", "postgres", "minigate", "checkout", throughput=50.0),
        phase("latipay", "postgres", "baseline", "checkout", throughput=100.0),
        # p99 at half saturation against the baseline's: 1.5× (met), 3.5× (miss)
        phase("latipay", "sqlite", "minigate", "checkout", "open", fraction=0.5, p99_ms=30.0),
        phase("latipay", "sqlite", "baseline", "checkout", "open", fraction=0.5, p99_ms=20.0),
        phase("latipay", "postgres", "minigate", "checkout", "open", fraction=0.5, p99_ms=70.0),
        phase("latipay", "postgres", "baseline", "checkout", "open", fraction=0.5, p99_ms=20.0),
        phase("latipay", "postgres", "minigate", "checkout", "open", fraction=0.25,
              p99_ms=999.0),  # not half load: ignored
        # notifications: 0.6× and 1.67× the CPU on SQLite (met); 0.4× and 3× on PostgreSQL
        phase("latipay", "sqlite", "minigate", "notification", throughput=600.0,
              cpu_ms_per_op=1.0),
        phase("latipay", "sqlite", "baseline", "notification", throughput=1000.0,
              cpu_ms_per_op=0.6),
        phase("latipay", "postgres", "minigate", "notification", throughput=400.0,
              cpu_ms_per_op=3.0),
        phase("latipay", "postgres", "baseline", "notification", throughput=1000.0,
              cpu_ms_per_op=1.0),
        phase("latipay", "sqlite", "minigate", "notification", "open", fraction=0.5,
              p99_ms=12.0),
        phase("latipay", "sqlite", "baseline", "notification", "open", fraction=0.5,
              p99_ms=10.0),
        # WeChat Pay v3 checkout CPU: 1.2× the baseline's on SQLite (met), 3× on PostgreSQL;
        # against a 1.0 ms crypto floor, 1.2× and 3× (information)
        phase("wechatpay", "sqlite", "minigate", "checkout", cpu_ms_per_op=1.2),
        phase("wechatpay", "sqlite", "baseline", "checkout", cpu_ms_per_op=1.0),
        phase("wechatpay", "postgres", "minigate", "checkout", cpu_ms_per_op=3.0),
        phase("wechatpay", "postgres", "baseline", "checkout", cpu_ms_per_op=1.0),
        {**phase("latipay", "postgres", "minigate", "checkout"), "suite": "rows",
         "history_rows": 10_000, "cpu_ms_per_op": 10.0},
        {**phase("latipay", "postgres", "minigate", "checkout"), "suite": "rows",
         "history_rows": 1_000_000, "cpu_ms_per_op": 11.0},
        {**phase("latipay", "postgres", "minigate", "notification"), "suite": "rows",
         "history_rows": 10_000, "cpu_ms_per_op": 2.0},
        {**phase("latipay", "postgres", "minigate", "notification"), "suite": "rows",
         "history_rows": 1_000_000, "cpu_ms_per_op": 3.0},
    ]
    crypto = [{"provider": "wechatpay", "op": "checkout", "us_per_op": 1000.0,
               "sim_us_per_op": 900.0, "covers": "2 RSA signatures + 1 verification"}]
    soaks = [
        {"provider": "latipay", "db": "postgres", "duration_s": 600.0, "rate_per_op": 20.0,
         "mode": "live (separate sandbox process)",
         "ops": 24000, "errors": 0, "cpu_ms_per_op": 5.0,
         "rss": {"samples": 1200, "seconds": 600.0, "first_mb": 90.0, "last_mb": 100.0,
                 "min_mb": 90.0, "max_mb": 100.0, "kb_per_min": 10.0, "kb_per_op": 0.004,
                 "series": [[0.0, 90.0], [600.0, 100.0]]}},
        {"provider": "qfpay", "db": "postgres", "duration_s": 600.0, "rate_per_op": 20.0,
         "ops": 24000, "errors": 0, "cpu_ms_per_op": 5.0,
         "rss": {"samples": 1200, "seconds": 600.0, "first_mb": 90.0, "last_mb": 150.0,
                 "min_mb": 90.0, "max_mb": 150.0, "kb_per_min": 6000.0, "kb_per_op": 2.5,
                 "series": [[0.0, 90.0], [600.0, 150.0]]}},
    ]
    return {"timestamp": "T", "machine": "test", "command": "test", "phases": phases,
            "crypto_floor": crypto, "soaks": soaks,
            "rss": {"minigate:1": {"first": 90.0, "min": 90.0, "max": 180.0, "last": 150.0},
                    "baseline:2": {"first": 50.0, "min": 50.0, "max": 300.0, "last": 60.0}}}


def test_targets_verdicts_on_a_synthetic_run() -> None:
    result = report.normalise(synthetic())
    v = {(t["target"], t["scope"]): t["verdict"] for t in result["targets"]}

    def find(prefix: str, scope: str) -> str:
        hits = [verdict for (name, sc), verdict in v.items()
                if name.startswith(prefix) and sc == scope]
        assert len(hits) == 1, (prefix, scope, v)
        return hits[0]

    assert find("checkout throughput", "latipay sqlite") == "met"
    assert find("checkout throughput", "latipay postgres") == "miss"
    assert find("checkout throughput", "wechatpay sqlite") == "met"  # 100 / 100
    assert find("checkout p99", "latipay sqlite") == "met"
    assert find("checkout p99", "latipay postgres") == "miss"
    assert find("notification throughput", "latipay sqlite") == "met"
    assert find("notification throughput", "latipay postgres") == "miss"
    assert find("CPU per notification", "latipay sqlite") == "met"
    assert find("CPU per notification", "latipay postgres") == "miss"
    assert find("notification p99", "latipay sqlite") == "met"
    assert find("WeChat Pay v3 checkout", "wechatpay sqlite") == "met"
    assert find("WeChat Pay v3 checkout", "wechatpay postgres") == "miss"
    assert not [name for name, scope in v if name.startswith("WeChat") and "latipay" in scope]
    assert find("per-order CPU", "checkout (1,000,000 / 10,000)") == "met"  # 1.1×
    assert find("per-order CPU", "notification (1,000,000 / 10,000)") == "miss"  # 1.5×
    assert find("RSS < 250 MB", "max") == "met"  # the baseline's 300 MB does not count
    assert find("RSS flat",
                "latipay postgres 600 s live (separate sandbox process)") == "met"  # +14 MB/24 h
    assert find("RSS flat", "qfpay postgres 600 s sandbox") == "miss"  # +8 GB in 24 h


def test_a_soak_whose_operations_failed_is_not_flat() -> None:
    """Every notification of a soak rejected (as ``--soak-live`` once was): RSS stayed
    flat because the load did not run, which is no evidence."""
    raw = synthetic()
    raw["soaks"] = [dict(raw["soaks"][0], errors=12000)]
    rows = [t for t in targets.targets(report.normalise(raw))
            if t["target"].startswith("RSS flat")]
    assert [t["verdict"] for t in rows] == ["miss"]
    assert "12,000 of 24,000 operations failed" in rows[0]["shown"]


def test_unmeasured_targets_say_so() -> None:
    result = report.normalise({"timestamp": "T", "machine": "m", "command": "c",
                               "phases": [], "provider": "latipay"})
    assert {t["verdict"] for t in result["targets"]} == {"not measured"}
    assert len(result["targets"]) == 9


def test_ratios_and_cpu_vs_floor() -> None:
    result = report.normalise(synthetic())
    latipay = {(r["db"], r["op"]): r["ratio"] for r in result["ratios"]
               if r["provider"] == "latipay"}
    assert latipay == {("sqlite", "checkout"): 0.9, ("postgres", "checkout"): 0.5,
                       ("sqlite", "notification"): 0.6, ("postgres", "notification"): 0.4}
    floor = {(r["provider"], r["db"]): r["ratio"] for r in result["cpu_vs_floor"]}
    assert floor == {("wechatpay", "sqlite"): 1.2, ("wechatpay", "postgres"): 3.0}


def test_markdown_groups_by_provider_and_prints_the_floor_ratio() -> None:
    md = report.markdown(report.normalise(synthetic()))
    assert md.index("## Provider: latipay") < md.index("## Provider: wechatpay")
    assert "## Targets" in md and "**miss**" in md
    assert "**1.2×**" in md and "**3.0×**" in md
    assert "## Memory soak" in md


def test_the_phase_table_shows_each_phase_s_steal_time() -> None:
    result = synthetic()
    result["phases"][0]["steal_pct"] = 12.5  # the others, as older results, have none
    md = report.markdown(report.normalise(result))
    rows = [line for line in md.splitlines() if line.startswith("| core |")]
    assert rows[0].endswith("| 12.50 | – |")  # then the core speed: none here
    assert rows[1].endswith("| – |")


def test_the_phase_table_shows_each_phase_s_full_collections() -> None:
    result = synthetic()
    result["phases"][0]["full_gcs"] = 3
    result["phases"][1]["full_gcs"] = None  # a server that could not say
    md = report.markdown(report.normalise(result))
    rows = [line for line in md.splitlines() if line.startswith("| core |")]
    assert rows[0].split(" | ")[-6:] == ["3", "–", "–", "–", "–", "– |"]
    assert rows[1].split(" | ")[-5] == "–" and rows[2].split(" | ")[-5] == "–"
    assert ("| full GCs | loop holds > 25 / 100 ms | load generator holds > 25 / 100 ms "
            "(longest ms) | disk flushes > 25 ms (longest ms) | steal % |") in md


def test_the_phase_table_shows_the_event_loop_holds() -> None:
    result = synthetic()
    result["phases"][0] |= {"loop_holds_25ms": 7, "loop_holds_100ms": 2,
                            "client_holds": [3, 1], "client_max_hold_ms": 212.5,
                            "flushes": 50, "flushes_over_25ms": 2, "longest_flush_ms": 96.5}
    md = report.markdown(report.normalise(result))
    header = next(line for line in md.splitlines() if line.startswith("| suite |")).split(" | ")
    column = header.index("loop holds > 25 / 100 ms")
    client = header.index("load generator holds > 25 / 100 ms (longest ms)")
    rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| core |")]
    assert rows[0][column] == "7 / 2" and rows[1][column] == "–"
    assert rows[0][client] == "3 / 1 (212.5)" and rows[1][client] == "–"
    flushes = header.index("disk flushes > 25 ms (longest ms)")
    assert rows[0][flushes] == "2 (96.50)" and rows[1][flushes] == "–"


def test_the_tables_show_the_database_s_cpu_per_operation() -> None:
    result = synthetic()
    result["phases"][2]["db_cpu_ms_per_op"] = 0.63  # latipay postgres: minigate, baseline
    result["phases"][3]["db_cpu_ms_per_op"] = 0.12
    md = report.markdown(report.normalise(result))
    header = next(line for line in md.splitlines() if line.startswith("| suite |"))
    column = header.split(" | ").index("DB CPU ms/op")
    rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| core |")]
    assert [r[column] for r in rows[:4]] == ["–", "–", "0.63", "0.12"]  # – on SQLite
    ratio = next(r for r in report.normalise(result)["ratios"]
                 if (r["provider"], r["db"], r["op"]) == ("latipay", "postgres", "checkout"))
    assert (ratio["minigate_db_cpu_ms"], ratio["baseline_db_cpu_ms"]) == (0.63, 0.12)
    assert "| 0.50 | same | – | 1.00 | 1.00 | 0.63 | 0.12 |" in md  # the ratio table's last columns


def test_the_phase_table_shows_wal_and_checkpoints() -> None:
    """WAL and PostgreSQL's checkpoints on PostgreSQL; on SQLite, minigate's checkpoints
    beside the writes / on the write path (the baseline's SQLite cannot say)."""
    result = synthetic()
    result["phases"][0] |= {"sqlite_checkpoints": 7, "sqlite_checkpoints_write_path": 2}
    result["phases"][2] |= {"wal_kb_per_op": 9.5, "checkpoints": 1,
                            "checkpoint_buffers": 12345, "checkpoint_sync_ms": 88.0}
    result["phases"][3] |= {"wal_kb_per_op": 1.25, "checkpoints": 0,
                            "checkpoint_buffers": 0, "checkpoint_sync_ms": 0.0}
    md = report.markdown(report.normalise(result))
    header = next(line for line in md.splitlines() if line.startswith("| suite |")).split(" | ")
    wal = header.index("WAL KB/op")
    ckpt = header.index(
        "checkpoints (PostgreSQL: ended, buffers, sync ms; SQLite: beside / write path)")
    rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| core |")]
    assert [(r[wal], r[ckpt]) for r in rows[:4]] == [
        ("–", "7 / 2"), ("–", "–"), ("9.50", "1, 12,345, 88.00"), ("1.25", "0, 0, 0.00")]
    assert all(len(r) == len(header) for r in rows)


def test_old_single_provider_results_still_render() -> None:
    old = synthetic()
    for p in old["phases"]:
        p.pop("provider")
    old["provider"] = "latipay"
    raw = copy.deepcopy(old)  # as read from the file (normalise fills in the phases')
    result = report.normalise(old)
    assert result["providers"] == ["latipay"]
    assert "## Provider: latipay" in report.markdown(result)
    p99 = {(r["target"].split()[0], r["scope"]): r["verdict"] for r in targets.targets(raw)
           if "p99" in r["target"]}
    assert p99[("checkout", "latipay sqlite")] == "met"  # judged as the provider's


def test_soak_slope_over_the_second_half() -> None:
    # flat 100 MB for 300 s, then +1 MB per minute: only the second half counts
    samples = [{"t": 10.0 + t, "server": "minigate:1", "phase": "soak/x/pg",
                "rss_mb": 100.0 + max(0.0, t - 300) / 60} for t in range(0, 601)]
    samples += [{"t": 5.0, "server": "minigate:1", "phase": "core", "rss_mb": 50.0},
                {"t": 20.0, "server": "baseline:2", "phase": "soak/x/pg", "rss_mb": 500.0}]
    s = soak.summarise(samples, "minigate:1", "soak/x/pg", ops_per_s=40.0)
    assert s["first_mb"] == 100.0 and s["max_mb"] == 105.0 and s["seconds"] == 600.0
    assert abs(s["kb_per_min"] - 1024) < 1
    assert abs(s["kb_per_op"] - 1024 / 60 / 40) < 0.01
    assert s["series"][0] == [0.0, 100.0] and s["series"][1][0] == 5.0


def test_soak_without_samples() -> None:
    assert soak.summarise([], "minigate:1", "soak/x/pg", 10.0) == {"samples": 0}
    assert soak.slope([(1.0, 2.0)]) == 0.0
    assert targets.targets({"phases": [], "soaks": [{"rss": {"samples": 0}}]})


def test_rounds_pair_in_order_and_the_ratio_is_their_geometric_mean() -> None:
    """Round i of minigate is compared with round i of the baseline (measured back to
    back), not the best of one with the worst of the other; the ratio is the rounds'
    geometric mean."""
    def closed(server: str, rnd: int, ops: float, cpu: float) -> dict[str, Any]:
        return {"suite": "core", "mode": "closed", "provider": "latipay", "db": "sqlite",
                "op": "checkout", "server": server, "round": rnd, "throughput": ops,
                "cpu_ms_per_op": cpu}

    # m first, then b (slowed); b first, then m (slowed).
    phases = [closed("minigate", 1, 100, 8.0), closed("baseline", 1, 50, 16.0),
              closed("baseline", 2, 100, 8.0), closed("minigate", 2, 50, 18.0)]
    (r,) = targets.ratios(phases)
    assert r["rounds"] == [2.0, 0.5]
    assert abs(r["ratio"] - 1.0) < 1e-9  # the penalties cancel
    assert r["cpu_rounds"] == [0.5, 2.25] and abs(r["cpu_ratio"] - 1.0607) < 1e-3
    row = next(t for t in targets.targets({"ratios": [r], "phases": phases})
               if t["target"].startswith("checkout throughput"))
    assert row["verdict"] == "met" and "geometric mean of 2.00, 0.50" in row["shown"]


def test_every_measured_saturation_phase_follows_the_other_servers() -> None:
    """A phase measures slower after the other server's phase than after its own, so every
    measured phase has the other server's before it (the warm-ups end with the baseline),
    for any number of rounds."""
    import pytest

    from bench.cli import parse_args, saturation_order

    for rounds in (1, 2, 3, 4):
        order = saturation_order(rounds, ["minigate", "baseline"])
        assert [r for r, _ in order] == [r for r in range(rounds) for _ in range(2)]
        previous = "baseline"  # the last warm-up
        for _, server in order:
            assert server != previous
            previous = server
    assert parse_args(["run", "--rounds", "3"]).rounds == 3
    assert parse_args(["run"]).rounds == 2
    with pytest.raises(SystemExit):
        parse_args(["run", "--rounds", "0"])


def test_every_measured_phase_follows_an_equally_long_stop() -> None:
    """A phase costs more when its server was stopped for longer before it, so before every
    measured phase the other server ran the same phases (count and seconds); the first
    round's minigate phase included, which used to follow only the baseline's 1-second
    warm-up."""
    from bench.cli import SWITCH_WARMUP, WARMUP, phase_plan

    duration = 5.0
    for rounds in (1, 2, 4):
        for fractions in ([0.5], [0.25, 0.5, 0.75]):
            plan = phase_plan(rounds, ["minigate", "baseline"], fractions, duration)
            measured = [i for i, step in enumerate(plan) if step.record]
            assert len(measured) == 2 * rounds + 2 * rounds * len(fractions)
            assert plan[0].duration == plan[1].duration == WARMUP  # both warmed up first
            stops = set()
            for i in measured:
                target = plan[i].target
                assert plan[i - 1].target == target and not plan[i - 1].record
                assert plan[i - 1].duration == SWITCH_WARMUP  # its own switch warm-up
                j, seconds = i - 2, []
                while j >= 0 and plan[j].target != target:  # the other server's run
                    seconds.append(plan[j].duration or duration)
                    j -= 1
                stops.add((len(seconds), sum(seconds)))
            assert stops == {(2, SWITCH_WARMUP + duration)}
            # the rounds still alternate strictly, minigate first: the saturation rounds,
            # then as many rounds of open-loop phases at each fraction
            strict = [(r, t) for r in range(rounds) for t in ("minigate", "baseline")]
            saturation = [(s.round, s.target) for s in plan if s.record and s.fraction is None]
            assert saturation == strict
            for f in fractions:
                assert [(s.round, s.target) for s in plan if s.fraction == f] == strict


def test_the_seeded_orders_last_every_notification_phase_at_the_ceiling() -> None:
    """minigate's notifications each use up a seeded pending order. A run once reached
    4,200/s where the orders had been sized for 2,500/s: the warm-ups used them up, the
    next phase measured 0/s and the report failed. The pool now covers every second
    minigate runs in a run's plan at :data:`NOTIFY_CEILING`."""
    from bench.cli import NOTIFY_CEILING, notification_pool, phase_plan

    for duration in (5.0, 15.0):
        for rounds in (1, 2, 4):
            for fractions in ([0.5], [0.25, 0.5, 0.75]):
                plan = phase_plan(rounds, ["minigate", "baseline"], fractions, duration)
                seconds = sum((step.duration or duration) * (step.fraction or 1.0)
                              for step in plan if step.target == "minigate")
                pool = notification_pool(rounds, fractions, duration)
                assert NOTIFY_CEILING * seconds <= pool <= NOTIFY_CEILING * seconds + 3000


def test_half_load_p99_takes_the_median_of_the_rounds_ratios() -> None:
    """One stall decides a 5-second phase's p99, so with rounds of open-loop phases the
    verdict is the median of the rounds' ratios, and each round's is shown."""

    def half(server: str, rnd: int, p99: float) -> dict[str, Any]:
        return phase("qfpay", "sqlite", server, "checkout", "open", fraction=0.5,
                     round=rnd, p99_ms=p99)

    # ratios 1.5, 9.0 (one stall in minigate's phase), 1.8, 0.5 (one in the baseline's)
    runs = [("minigate", 15.0), ("baseline", 10.0), ("minigate", 90.0), ("baseline", 10.0),
            ("minigate", 18.0), ("baseline", 10.0), ("minigate", 10.0), ("baseline", 20.0)]
    phases = [half(server, i // 2 + 1, p99) for i, (server, p99) in enumerate(runs)]
    (row,) = [r for r in targets.targets({"phases": phases, "ratios": []})
              if r["target"].startswith("checkout p99") and r["scope"] == "qfpay sqlite"]
    assert row["verdict"] == "met" and row["value"] == 1.65  # median of 0.5, 1.5, 1.8, 9.0
    assert "median of 4 rounds" in row["shown"] and "90.0/10.0 ms = 9.00" in row["shown"]
    # a majority of slow rounds is a miss
    phases = [half(s, i // 2 + 1, 50.0 if s == "minigate" and i < 6 else p)
              for i, (s, p) in enumerate(runs)]
    (row,) = [r for r in targets.targets({"phases": phases, "ratios": []})
              if r["target"].startswith("checkout p99") and r["scope"] == "qfpay sqlite"]
    assert row["verdict"] == "miss"


def test_checkout_targets_against_the_baseline_with_the_create_request_say_so() -> None:
    plain = report.normalise(synthetic())
    raw = synthetic() | {"baseline_create": True}
    labelled = report.normalise(raw)
    before = {(t["target"], t["scope"]): t["verdict"] for t in plain["targets"]}
    after = {(t["target"], t["scope"]): t["verdict"] for t in labelled["targets"]}
    assert len(before) == len(after)
    renamed = {name for name, _ in after if name.endswith(targets.BASELINE_CREATE)}
    assert renamed and all(name.startswith(("checkout", "WeChat Pay v3 checkout"))
                           for name in renamed)
    for (name, scope), verdict in after.items():  # the same verdicts, under a clear name
        assert before[(name.removesuffix(targets.BASELINE_CREATE), scope)] == verdict
    assert "Baseline with the create request" in report.markdown(labelled)
    assert "Baseline with the create request" not in report.markdown(plain)


def test_ratios_are_adjusted_for_the_measured_core_s_speed() -> None:
    """A round whose minigate phase ran on a core 1.5× slower than the baseline's phase
    (the speed probe's unit took 1.5 ms against 1.0) counts minigate's throughput 1.5×
    and its CPU per operation ÷ 1.5; the verdict takes the adjusted ratio and shows the
    raw one beside it."""
    def closed(server: str, rnd: int, ops: float, cpu: float,
               speed: float | None) -> dict[str, Any]:
        return {"suite": "core", "mode": "closed", "provider": "wechatpay", "db": "sqlite",
                "op": "checkout", "server": server, "round": rnd, "throughput": ops,
                "cpu_ms_per_op": cpu, "core_speed_ms": speed}

    phases = [closed("minigate", 1, 60, 15.0, 1.5), closed("baseline", 1, 100, 9.0, 1.0),
              closed("minigate", 2, 90, 10.0, 1.0), closed("baseline", 2, 100, 9.0, 1.0)]
    (r,) = targets.ratios(phases)
    assert r["adjusted"] and r["speed_factors"] == [1.5, 1.0]
    assert [round(x, 3) for x in r["raw_rounds"]] == [0.6, 0.9]
    assert [round(x, 3) for x in r["rounds"]] == [0.9, 0.9]
    assert [round(x, 3) for x in r["cpu_rounds"]] == [1.111, 1.111]
    assert round(r["raw_ratio"], 3) == 0.735 and round(r["ratio"], 3) == 0.9
    rows = targets.targets({"ratios": [r], "phases": phases})
    row = next(t for t in rows if t["target"].startswith("checkout throughput"))
    assert row["verdict"] == "met"  # 0.9 adjusted; raw, 0.73 would miss
    assert "adjusted for the core's speed" in row["shown"] and "raw 0.73×" in row["shown"]
    cpu = next(t for t in rows if t["target"].startswith("WeChat Pay v3 checkout CPU"))
    assert cpu["verdict"] == "met" and round(cpu["value"], 3) == 1.111
    md = "\n".join(report._ratio_table([r]))
    assert "| 0.90 (0.90, 0.90) | 0.73 (0.60, 0.90) | 1.50, 1.00 |" in md

    # one phase without a reading (a run from before the probe): raw ratios, as before
    phases[3]["core_speed_ms"] = None
    (r,) = targets.ratios(phases)
    assert not r["adjusted"] and r["rounds"] == r["raw_rounds"]
    row = next(t for t in targets.targets({"ratios": [r], "phases": phases})
               if t["target"].startswith("checkout throughput"))
    assert row["verdict"] == "miss" and "adjusted" not in row["shown"]
