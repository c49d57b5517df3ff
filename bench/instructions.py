"""Instructions per checkout, counted by Valgrind's callgrind: an A/B tool that the VM's
core speeds do not move.

``python -m bench.instructions --db sqlite --provider cbtis`` runs minigate in sandbox mode
in one process (as :mod:`bench.inproc`: HTTP over an in-process ASGI transport, the
simulators included), under ``valgrind --tool=callgrind`` with counting off. After a
warm-up it turns counting on (``callgrind_control -i on``), makes ``--n`` checkouts one
after another (create with an Idempotency-Key, wallet login, pay), turns it off, and prints
the user-space instructions per checkout.

Why: on this project's VMs each core switches every few seconds between two speeds about
2x apart (``docs/performance.md``, round 18), so CPU time moves by more than most changes
do. The instruction count of the same run repeats to within 0.1 %, so two versions of
``src/`` compare on one number. What it does not see: time in the kernel (system calls,
SQLite's page writes), cache misses, and uvicorn's and the sockets' share of a real request.
It is a complement to ``bench run``, not a replacement.

Needs Valgrind (Debian: ``apt-get install valgrind``); a run of 80 checkouts takes about
20 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_COLLECTED = re.compile(r"Collected\s*:\s*([0-9]+)")


def collected(valgrind_log: str) -> int:
    """The instruction count callgrind reports as collected, from its log."""
    found = _COLLECTED.findall(valgrind_log)
    if not found:
        raise ValueError("no 'Collected' count in the valgrind output")
    return int(found[-1])


def _toggle(on: bool) -> None:
    if shutil.which("callgrind_control") is not None:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                       check=True, capture_output=True)


async def _checkouts(db_kind: str, provider: str, n: int, warm: int) -> None:
    from bench import inproc
    from bench.providers import PROVIDERS
    from bench.servers import Database

    db = Database(db_kind, Path(tempfile.mkdtemp(prefix="mg-instr-")))
    await db.create()
    bench = PROVIDERS[provider]
    runtime, api = await inproc._runtime(db.url)
    try:
        for i in range(warm):
            await inproc.checkout_once(api, bench, n + i)
        _toggle(True)
        for i in range(n):
            await inproc.checkout_once(api, bench, i)
        _toggle(False)
    finally:
        await api.aclose()
        await runtime.stop()
        await db.drop()


def measure(db_kind: str, provider: str, n: int, warm: int) -> int:
    """Instructions per checkout (user space, this machine's build of everything)."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="mg-instr-") as tmp:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={Path(tmp) / 'callgrind.out'}",
               sys.executable, "-m", "bench.instructions", "--counted-run", "--db", db_kind,
               "--provider", provider, "--n", str(n), "--warm", str(warm)]
        env = os.environ | {"PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise SystemExit(f"the measured run failed:\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-4000:]}")
    return collected(done.stderr) // n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--provider", default="cbtis")
    parser.add_argument("--n", type=int, default=80, help="checkouts counted (default 80)")
    parser.add_argument("--warm", type=int, default=60,
                        help="checkouts before counting starts (default 60)")
    parser.add_argument("--counted-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from bench.providers import PROVIDERS

    if args.provider not in PROVIDERS:
        parser.error(f"unknown provider {args.provider!r}: one of {', '.join(PROVIDERS)}")
    if args.n < 1 or args.warm < 0:
        parser.error("--n must be at least 1 and --warm at least 0")
    if args.counted_run:  # the process under valgrind
        asyncio.run(_checkouts(args.db, args.provider, args.n, args.warm))
        return
    per = measure(args.db, args.provider, args.n, args.warm)
    print(f"{args.db} {args.provider}: {per:,} instructions per checkout "
          f"({args.n} counted after {args.warm})")


if __name__ == "__main__":
    main()
