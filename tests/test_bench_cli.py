"""The benchmark's argument parsing only: benchmarks never run (or time anything) in pytest."""

from __future__ import annotations

import pytest

from bench.cli import parse_args


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
