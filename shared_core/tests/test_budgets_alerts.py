"""Alerts: de-duplication, sinks, and a webhook that retries in the background."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from faremeter.alerts import Alert, AlertDispatcher, CallbackSink, LoggingSink, WebhookSink

AT = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def alert(window: str = "d2026-12-01", kind: str = "budget.denied") -> Alert:
    return Alert(
        kind=kind,
        message="budget 'b' refused a call",
        at=AT,
        budget="b",
        window=window,
        amounts={"limit": Decimal("1"), "spent": Decimal("0.99")},
    )


def test_dispatcher_sends_once_per_key() -> None:
    got: list[Alert] = []
    dispatcher = AlertDispatcher([CallbackSink(got.append)])
    assert dispatcher.dispatch(alert())
    assert not dispatcher.dispatch(alert())
    assert dispatcher.dispatch(alert(window="d2026-12-02"))
    assert [a.window for a in got] == ["d2026-12-01", "d2026-12-02"]
    assert (dispatcher.sent, dispatcher.suppressed) == (2, 1)


def test_cross_process_claim_suppresses_what_another_process_sent() -> None:
    claimed: set[str] = {"budget.denied:b::d2026-12-01"}

    def claim(key: str, ttl_s: int) -> bool:
        if key in claimed:
            return False
        claimed.add(key)
        return True

    got: list[Alert] = []
    dispatcher = AlertDispatcher([CallbackSink(got.append)], claim=claim)
    assert not dispatcher.dispatch(alert())
    assert dispatcher.dispatch(alert(window="d2026-12-02"))
    assert len(got) == 1


def test_a_failing_sink_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[Alert] = []

    def boom(_: Alert) -> None:
        raise RuntimeError("pager down")

    dispatcher = AlertDispatcher([CallbackSink(boom), CallbackSink(got.append)])
    with caplog.at_level(logging.ERROR, logger="faremeter.alerts"):
        assert dispatcher.dispatch(alert())
    assert len(got) == 1
    assert "pager down" in caplog.text


def test_logging_sink_writes_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="faremeter.alerts"):
        LoggingSink().send(alert())
    assert "[budget.denied] budget 'b' refused a call" in caplog.text


def test_alert_to_dict_keeps_exact_amounts() -> None:
    data = alert().to_dict()
    assert data["amounts"] == {"limit": "1", "spent": "0.99"}
    assert data["at"] == "2026-12-01T12:00:00+00:00"


class _Recorder(BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    bodies: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        body = json.loads(self.rfile.read(length))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.bodies.append(body)
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"statuses": [], "bodies": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", handler
    httpd.shutdown()
    httpd.server_close()


def test_webhook_retries_server_errors_in_the_background(
    server: tuple[str, type[_Recorder]],
) -> None:
    url, handler = server
    handler.statuses.extend([503, 500])  # two failures, then success
    backoffs: list[float] = []
    sink = WebhookSink(url, attempts=5, backoff_s=0.5, sleep=backoffs.append)
    sink.send(alert())
    assert sink.flush(timeout_s=30)
    assert handler.bodies[0]["kind"] == "budget.denied"
    assert handler.bodies[0]["amounts"] == {"limit": "1", "spent": "0.99"}
    assert (sink.sent, sink.failed) == (1, 0)
    assert len(backoffs) == 2 and backoffs[1] >= backoffs[0]
    sink.close()


def test_webhook_gives_up_after_its_attempts_and_never_raises(
    server: tuple[str, type[_Recorder]],
) -> None:
    url, handler = server
    handler.statuses.extend([500] * 10)
    sink = WebhookSink(url, attempts=3, sleep=lambda _: None)
    sink.send(alert())
    assert sink.flush(timeout_s=30)
    assert (sink.sent, sink.failed) == (0, 1)
    assert handler.bodies == []
    sink.close()


def test_webhook_queue_is_bounded_and_send_never_blocks() -> None:
    release = threading.Event()

    def slow_sleep(_: float) -> None:
        release.wait()

    # Nothing listens on port 9 (discard): every post fails and backs off
    # into slow_sleep, so the worker is stuck while we fill the queue.
    sink = WebhookSink("http://127.0.0.1:9/", queue_size=2, sleep=slow_sleep, timeout_s=1)
    for _ in range(10):
        sink.send(alert())
    assert sink.dropped >= 7
    release.set()
    sink.close(timeout_s=30)
