"""Crash points for fault-injection tests: ``MINIGATE_CRASH_AT=refund.reserved`` makes this
process SIGKILL itself the moment it passes that point, as a power cut would.

They sit between the steps of every money operation whose order matters (after a commit,
before the next call), so tests can prove that a retry resumes correctly from each one.
Unset (always, in production), a crash point is one set lookup.
"""

from __future__ import annotations

import os
import signal

_ARMED = frozenset(p for p in os.environ.get("MINIGATE_CRASH_AT", "").split(",") if p)

#: Every crash point, for documentation and for tests that iterate over them.
POINTS = ("order.committed", "refund.reserved", "refund.claimed", "refund.answered")


def crash_point(name: str) -> None:
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
