"""``python -m bench.instructions``: callgrind's count, read back; a clear exit without
Valgrind; and one real count of a few checkouts (where Valgrind is installed)."""

from __future__ import annotations

import shutil

import pytest

from bench import instructions

LOG = """==1== Callgrind, a call-graph generating cache profiler
==1== Events    : Ir
==1== Collected : 1027136788
==1==
==1== I   refs:      1,027,136,788
"""


def test_the_collected_count_is_read_from_valgrinds_output() -> None:
    assert instructions.collected(LOG) == 1_027_136_788
    with pytest.raises(ValueError, match="Collected"):
        instructions.collected("==1== Command: python\n")


def test_without_valgrind_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda _tool: None)
    with pytest.raises(SystemExit, match="apt-get install valgrind"):
        instructions.measure("sqlite", "cbtis", 1, 0)


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--provider", "nope"], ["--n", "0"]):
        with pytest.raises(SystemExit) as exited:
            instructions.main(argv)
        assert exited.value.code == 2
    assert "unknown provider 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="Valgrind is not installed")
def test_a_real_count_of_a_few_checkouts() -> None:
    # A CBTIS checkout is some 12-15 million instructions here (docs/performance.md,
    # round 19); the bounds only say that checkouts, and only they, were counted.
    per = instructions.measure("sqlite", "cbtis", 2, 1)
    assert 2_000_000 < per < 100_000_000
