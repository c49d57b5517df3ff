"""``python -m bench statements`` on the machine's real PostgreSQL: each case runs the writes
it names (minigate's three statements, the baseline's one or three), and the figures come
from the work done. Nothing is timed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench import statements
from bench.cli import parse_args


@pytest.mark.postgres
async def test_each_case_runs_its_statements_and_reports_their_cost(
        postgres_url: str, tmp_path: Path) -> None:
    parts = urlsplit(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    maintenance = parts._replace(path="/postgres").geturl()
    lines: list[str] = []
    medians = await statements.run(200, 4, 2, list(statements.CASES), tmp_path,
                                   dsn=maintenance, progress=lines.append)
    assert len(lines) == 2 * len(statements.CASES)  # each case, each repeat
    assert {case: f["statements"] for case, f in medians.items()} == {
        "minigate": 3, "baseline": 1, "baseline-create": 3}
    # minigate writes an order, its key, a payment and two events, with their indexes; the
    # baseline one row of one index: the WAL says so.
    assert medians["minigate"]["wal_kb"] > 2 * medians["baseline"]["wal_kb"] > 0
    for figures in medians.values():
        assert figures["client_cpu_ms"] > 0 and figures["wall_ms"] > 0
        assert figures["db_cpu_ms"] >= 0
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):  # the server's processes
        # CPU time is counted in 10 ms ticks: 200 of minigate's checkouts are many of them
        assert medians["minigate"]["db_cpu_ms"] > 0
    table = statements.table(medians).splitlines()
    assert len(table) == 2 + len(statements.CASES)
    assert "| baseline | 1 |" in table[3] and "| 1.00 |" in table[3]


def test_the_command_takes_its_options() -> None:
    args = parse_args(["statements", "-n", "10", "--concurrency", "2", "--repeat", "1",
                       "--cases", "minigate,baseline"])
    assert (args.command, args.checkouts, args.concurrency, args.repeat, args.cases) == (
        "statements", 10, 2, 1, "minigate,baseline")


def test_unknown_cases_are_refused() -> None:
    args = parse_args(["statements", "--cases", "minigate,nonsense"])
    with pytest.raises(SystemExit, match="--cases"):
        statements.main(args)
