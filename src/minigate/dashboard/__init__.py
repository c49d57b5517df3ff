"""The merchant dashboard at ``/dashboard``: server-rendered pages over the service layer.

Templates and static files live in this package, so an installed wheel serves them as is
(no CDN, no build step). Every change it makes goes through the same service functions as
the merchant API; :mod:`minigate.dashboard.queries` only reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from minigate.app import Runtime


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Serve the dashboard under ``/dashboard`` unless ``[dashboard] enabled = false``."""
    if runtime.settings.dashboard.enabled:
        from minigate.dashboard.web import create_dashboard

        app.mount("/dashboard", create_dashboard(runtime))
