"""A local web dashboard over any faremeter ledger.

``faremeter dashboard`` (or :func:`create_app` under any ASGI server) serves
one page with a live spend ticker, a per-task table with outliers in red, a
cost distribution with P50/P90/P99, optimisation opportunities, budgets
(money in flight, burn-down), savings and anomalies. Every panel is a JSON
endpoint whose numbers are ledger queries (:mod:`faremeter.dashboard.api`).
Charts use a vendored copy of uPlot shipped in the package, so the page
works offline. Needs the ``faremeter[dashboard]`` extra (Starlette, uvicorn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faremeter.dashboard.app import create_app
    from faremeter.dashboard.server import DashboardServer

__all__ = ["DashboardServer", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package must not import Starlette.
    if name == "create_app":
        from faremeter.dashboard.app import create_app

        return create_app
    if name == "DashboardServer":
        from faremeter.dashboard.server import DashboardServer

        return DashboardServer
    raise AttributeError(f"module 'faremeter.dashboard' has no attribute {name!r}")
