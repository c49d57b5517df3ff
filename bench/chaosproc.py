"""``python -m bench.chaosproc serve|worker …``: ``minigate serve`` / ``minigate worker`` with
one check lifted for the fault soak, in the same process, nothing else changed.

Live mode refuses a merchant webhook URL that is plain HTTP or on loopback (SSRF guard,
``minigate.jobs.destination``). The soak's merchant endpoint is a plain-HTTP server on
127.0.0.1 inside the harness, so exactly that URL (``MINIGATE_CHAOS_WEBHOOK_URL``, which
must equal ``MINIGATE_WEBHOOK_URL``) is let through; any other URL is checked as usual.

``MINIGATE_CHAOS_BACKOFF_SCALE`` (e.g. ``0.02``) shortens the webhook retry backoff (30 s,
1 m, 2 m … becomes 0.6 s, 1.2 s, 2.4 s …) so a few minutes of soak see many retries, and
``MINIGATE_CHAOS_BACKOFF_CAP`` (seconds) caps it, as minigate caps it at an hour, so the
soak's settling is not spent waiting; the schedule's shape and jitter stay minigate's.
"""

from __future__ import annotations

import os
import random
import runpy
import sys
from datetime import timedelta
from urllib.parse import urlsplit


def allow_receiver(receiver_url: str) -> None:
    from minigate import app
    from minigate.jobs import destination

    parts = urlsplit(receiver_url)
    receiver = (parts.hostname, parts.port)
    check_url, check_resolved = destination.check_url, destination.check_resolved

    def check_url_allowing(url: str, *, require_https: bool,
                           allow_loopback: bool) -> tuple[str, int]:
        if url == receiver_url:
            return check_url(url, require_https=False, allow_loopback=True)
        return check_url(url, require_https=require_https, allow_loopback=allow_loopback)

    async def check_resolved_allowing(host: str, port: int, *, allow_loopback: bool,
                                      resolver: destination.Resolver = destination.system_resolver,
                                      ) -> list[str]:
        return await check_resolved(host, port, resolver=resolver,
                                    allow_loopback=allow_loopback or (host, port) == receiver)

    destination.check_url = check_url_allowing
    destination.check_resolved = check_resolved_allowing
    app.check_url = check_url_allowing  # type: ignore[attr-defined]  # app's imported name


def scale_backoff(scale: float, cap: float) -> None:
    from minigate.jobs import runner

    backoff = runner.delivery_backoff

    def scaled(attempts: int, rng: random.Random | None = None) -> timedelta:
        return min(backoff(attempts, rng) * scale, timedelta(seconds=cap))

    runner.delivery_backoff = scaled


def main(argv: list[str]) -> None:
    url = os.environ.get("MINIGATE_CHAOS_WEBHOOK_URL", "")
    if url:
        allow_receiver(url)
    scale = float(os.environ.get("MINIGATE_CHAOS_BACKOFF_SCALE", "1"))
    cap = float(os.environ.get("MINIGATE_CHAOS_BACKOFF_CAP", "3600"))
    if scale != 1 or cap < 3600:
        scale_backoff(scale, cap)
    sys.argv = ["minigate", *argv]
    runpy.run_module("minigate.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
