"""The dashboard's ASGI app: the page, its static files and one JSON endpoint per panel.

Built on Starlette (the ``faremeter[dashboard]`` extra) and served by
uvicorn from ``faremeter dashboard``; any ASGI server works. Endpoints are
plain functions run in Starlette's thread pool, because ledger queries are
blocking and thread-safe. Every endpoint takes the same query string
(``window``, ``since``, ``until``, ``attr.<name>``) so all panels show the same
slice of the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faremeter.dashboard import api
from faremeter.dashboard.query import PanelQuery, parse_query
from faremeter.dashboard.source import DashboardSource

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["STATIC_DIR", "create_app"]

logger = logging.getLogger("faremeter.dashboard")

STATIC_DIR = Path(__file__).parent / "static"
"""The page, its script and style, and the vendored chart library (package data)."""

_PANELS: dict[str, Callable[[DashboardSource, PanelQuery], dict[str, Any]]] = {
    "ticker": api.ticker,
    "tasks": api.tasks,
    "distribution": api.distribution,
    "opportunities": api.opportunities,
    "budgets": api.budgets,
    "savings": api.savings,
    "anomalies": api.anomalies,
}


def _require() -> None:
    try:
        import starlette  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        raise ImportError(
            "the dashboard needs Starlette and uvicorn: pip install 'faremeter[dashboard]'"
        ) from None


def create_app(meter_or_ledger: Any, *, clock: Callable[[], int] | None = None) -> Starlette:
    """A Starlette app serving the dashboard for a meter or a ledger.

    Args:
        meter_or_ledger: A :class:`~faremeter.Meter` (budgets included) or a
            :class:`~faremeter.ledger.Ledger` (read-only view of any ledger).
        clock: Epoch nanoseconds that named windows (``24h``) end at;
            defaults to the meter's clock, else the system clock.

    Raises:
        ImportError: When the ``dashboard`` extra is not installed.
        TypeError: When given neither a meter nor a ledger.
    """
    _require()
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    src = DashboardSource.of(meter_or_ledger, clock=clock)
    headers = {"Cache-Control": "no-store"}

    def error(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def answer(request: Request, compute: Callable[[PanelQuery], Any]) -> Response:
        try:
            q = parse_query(dict(request.query_params), src.now())
            body = compute(q)
        except ValueError as exc:
            return error(400, str(exc))
        except Exception as exc:
            # A failing panel must not take the page (or the host) down.
            logger.exception("faremeter dashboard: %s failed", request.url.path)
            return error(500, f"{type(exc).__name__}: {exc}")
        if body is None:
            return error(404, "not found")
        return JSONResponse(body, headers=headers)

    def panel(fn: Callable[[DashboardSource, PanelQuery], dict[str, Any]]) -> Callable[..., Any]:
        def endpoint(request: Request) -> Response:
            return answer(request, lambda q: fn(src, q))

        return endpoint

    def trace_endpoint(request: Request) -> Response:
        trace_id = str(request.path_params["trace_id"])
        return answer(request, lambda _q: api.trace(src, trace_id))

    def values_endpoint(request: Request) -> Response:
        attribute = request.query_params.get("attribute") or "workflow"
        return answer(request, lambda q: api.attribute_values(src, q, attribute))

    def health_endpoint(request: Request) -> Response:
        h = src.ledger.health()
        return JSONResponse(
            {"backend": h.backend, "ok": h.ok, "queued": h.queued, "last_error": h.last_error},
            headers=headers,
        )

    def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    routes: list[Any] = [Route("/", index)]
    routes += [Route(f"/api/{name}", panel(fn)) for name, fn in _PANELS.items()]
    routes += [
        Route("/api/trace/{trace_id}", trace_endpoint),
        Route("/api/values", values_endpoint),
        Route("/api/health", health_endpoint),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.source = src
    return app
