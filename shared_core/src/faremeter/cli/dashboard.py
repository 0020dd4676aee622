"""``faremeter dashboard``: serve the local web dashboard over a ledger."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from faremeter.cli._context import add_meter_options, open_meter


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "dashboard", help="serve a live web dashboard of the ledger (needs faremeter[dashboard])"
    )
    add_meter_options(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)"
    )
    p.add_argument(
        "--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)"
    )
    p.add_argument("--no-open", action="store_true", help="do not open a browser tab")
    p.set_defaults(func=run)


def _meter(args: argparse.Namespace) -> Any:
    # An empty dashboard over a ledger that does not exist yet is allowed: it
    # fills in live as the app records.
    return open_meter(args, must_exist=False)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit 2 when the extra is missing."""
    try:
        import starlette  # noqa: F401  # pyright: ignore[reportUnusedImport]
        import uvicorn  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        print(
            "faremeter: error: the dashboard needs Starlette and uvicorn: "
            "pip install 'faremeter[dashboard]'",
            file=sys.stderr,
        )
        return 2
    from faremeter.dashboard.server import DashboardServer

    meter = _meter(args)
    try:
        server = DashboardServer(meter, host=args.host, port=args.port)
        url = server.url
        print(f"faremeter dashboard on {url} (Ctrl-C to stop)", flush=True)
        if not args.no_open:
            import webbrowser

            webbrowser.open(url)
        server.serve_forever()
    finally:
        meter.close()
    return 0
