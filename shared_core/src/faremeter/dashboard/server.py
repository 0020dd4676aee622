"""Run the dashboard under uvicorn in a background thread.

For notebooks, tests and apps that want the dashboard beside their own work
(``faremeter dashboard`` runs uvicorn in the foreground instead). The
listening socket is bound *before* the thread starts, so ``url`` is valid at
once — even with ``port=0`` (an ephemeral port) — and a request made right
away waits in the socket's backlog instead of failing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from faremeter.dashboard.app import create_app

__all__ = ["DashboardServer"]


class DashboardServer:
    """The dashboard for ``meter_or_ledger`` served on ``host:port`` from a thread.

    Use as a context manager (``with DashboardServer(meter) as server:
    print(server.url)``) or call :meth:`start` and :meth:`stop`.

    Args:
        meter_or_ledger: What to show (see :func:`create_app`).
        host: Interface to listen on; the default keeps it on this machine.
        port: TCP port; ``0`` picks a free one.
        clock: Passed to :func:`create_app`.
    """

    def __init__(
        self,
        meter_or_ledger: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], int] | None = None,
    ) -> None:
        import uvicorn

        self.app = create_app(meter_or_ledger, clock=clock)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the running dashboard."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> DashboardServer:
        """Start serving in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [self._sock]},
                name="faremeter-dashboard",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (what the CLI does)."""
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread, release the socket."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
