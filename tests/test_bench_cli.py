"""The benchmark's argument parsing only: benchmarks never run (or time anything) in pytest."""

from __future__ import annotations

import pytest

from bench.cli import add_note, parse_args, phase_plan, profile_name


def test_quick_defaults() -> None:
    args = parse_args(["run", "--quick", "--db", "sqlite"])
    assert args.dbs == ["sqlite"]
    assert args.duration == 5.0
    assert args.fractions == [0.5]
    assert args.suites == ["core", "workers", "rows"]


def test_full_run_and_suites() -> None:
    args = parse_args(["run", "--suite", "core,rows", "--rows", "200000", "--duration", "9"])
    assert args.dbs == ["sqlite", "postgres"]
    assert args.suites == ["core", "rows"]
    assert (args.rows, args.duration, args.fractions) == (200000, 9.0, [0.25, 0.5, 0.75])


def test_unknown_suite_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["run", "--suite", "core,nope"])


def test_provider_list_and_all() -> None:
    assert parse_args(["run"]).providers == ["latipay"]
    assert parse_args(["run", "--provider", "latipay,wechatpay"]).providers == [
        "latipay", "wechatpay"]
    assert parse_args(["run", "--provider", "all"]).providers == [
        "latipay", "qfpay", "cbtis", "wechatpay", "wechatpay-v2"]


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["run", "--provider", "latipay,paypal"])


def test_soak_is_opt_in_and_its_duration() -> None:
    assert "soak" not in parse_args(["run"]).suites
    full = parse_args(["run", "--suite", "soak"])
    assert (full.suites, full.soak_duration, full.soak_rate) == (["soak"], 600.0, 20.0)
    assert parse_args(["run", "--suite", "soak", "--quick"]).soak_duration == 60.0
    # --duration is the soak's length when soak runs alone …
    assert parse_args(["run", "--suite", "soak", "--duration", "120"]).soak_duration == 120.0
    # … but stays the phase length when other suites run too
    mixed = parse_args(["run", "--suite", "core,soak", "--duration", "9"])
    assert (mixed.duration, mixed.soak_duration) == (9.0, 600.0)
    explicit = parse_args(["run", "--suite", "core,soak", "--soak-duration", "300",
                           "--soak-rate", "5"])
    assert (explicit.soak_duration, explicit.soak_rate) == (300.0, 5.0)


def test_live_soak_is_latipay_only() -> None:
    args = parse_args(["run", "--suite", "soak", "--soak-live", "--provider", "latipay"])
    assert args.soak_live and args.providers == ["latipay"]
    with pytest.raises(SystemExit):
        parse_args(["run", "--suite", "soak", "--soak-live", "--provider", "wechatpay"])


def test_live_soak_points_minigate_at_the_separate_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench.servers import live_env
    from minigate.config import load_settings

    for name, value in live_env("http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert not settings.sandbox_mode and settings.latipay.configured
    assert settings.latipay.base_url == "http://127.0.0.1:9/sandbox/latipay"
    assert settings.wechat_login.base_url == "http://127.0.0.1:9/sandbox/wechat-login"


def test_core_defers_reconciliation_past_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core suite's minigate asks the provider about a checkout an hour later at the
    earliest (no benchmark checkout is paid; the baseline reconciles nothing)."""
    from bench.cli import CORE_MINIGATE_ENV
    from minigate.config import load_settings

    for name, value in CORE_MINIGATE_ENV.items():
        monkeypatch.setenv(name, value)
    assert min(load_settings().reconcile_schedule) >= 3600


def test_a_note_is_added_once() -> None:
    notes: list[str] = []
    for _ in ("sqlite", "postgres"):  # cbtis's note was written once per database
        add_note(notes, "cbtis: notification not applicable")
    add_note(notes, "core: the reconciler waits an hour")
    assert notes == ["cbtis: notification not applicable", "core: the reconciler waits an hour"]


def test_ops_and_the_baseline_with_the_create_request() -> None:
    args = parse_args(["run"])
    assert (args.ops, args.baseline_create) == (["checkout", "notification"], False)
    args = parse_args(["run", "--ops", "checkout", "--baseline-create"])
    assert (args.ops, args.baseline_create) == (["checkout"], True)
    for bad in ("", "refund", "checkout,nope"):
        with pytest.raises(SystemExit):
            parse_args(["run", "--ops", bad])


def test_profile_each_server_s_first_saturation_phase_under_its_own_name() -> None:
    steps = phase_plan(2, ["minigate", "baseline"], [0.5], 5.0)
    named = [(s.target, profile_name("latipay-sqlite-checkout", s)) for s in steps]
    profiled = [(target, name) for target, name in named if name]
    assert sorted(profiled) == [("baseline", "latipay-sqlite-checkout-baseline"),
                                ("minigate", "latipay-sqlite-checkout")]
