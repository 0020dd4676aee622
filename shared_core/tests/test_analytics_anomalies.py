"""Anomaly detection with a deterministic clock: no threads timing, no wall clock."""

from __future__ import annotations

from decimal import Decimal

import pytest

from faremeter import SpanKind, SpanRecord, Usage
from faremeter.alerts import Alert, AlertDispatcher, CallbackSink
from faremeter.analytics import (
    AnomalyMonitor,
    LoopDetector,
    SpendRateDetector,
    ToolRateDetector,
    spend_series,
    spend_spikes,
)
from faremeter.cost import Cost
from faremeter.testing import FakeClock, make_test_meter

HOUR = 3_600 * 10**9
MINUTE = 60 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z


def spend_span(at: int, amount: str, n: int) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{n:032x}", span_id=f"{n:016x}", name="gpt-4o", kind=SpanKind.LLM,
        start_ns=at, end_ns=at, cost=Cost(input=Decimal(amount)),
    )  # fmt: skip


def feed_hours(det: SpendRateDetector, hourly: list[str], per_hour: int = 4) -> list[Alert]:
    """Spread each hour's spend over ``per_hour`` spans; return the alerts raised."""
    alerts: list[Alert] = []
    for h, amount in enumerate(hourly):
        part = Decimal(amount) / per_hour
        for k in range(per_hour):
            alert = det.add(T0 + h * HOUR + k * (HOUR // per_hour), part)
            if alert is not None:
                alerts.append(alert)
    return alerts


def test_a_3x_spike_in_an_hour_alerts_once() -> None:
    det = SpendRateDetector()
    alerts = feed_hours(det, ["1.00"] * 6 + ["3.20"] + ["1.00"] * 3, per_hour=16)
    assert len(alerts) == 1
    (a,) = alerts
    assert a.kind == "anomaly.spend_rate"
    assert a.amounts["baseline"] == Decimal("1.00") and a.amounts["threshold"] == Decimal("3.00")
    assert a.at.hour == 6
    # it fired as soon as the hour crossed 3x (15 of 16 parts), not at the end of the hour
    assert a.amounts["spent"] == Decimal("3.00")


def test_steady_spend_and_slow_growth_raise_nothing() -> None:
    assert feed_hours(SpendRateDetector(), ["1.00"] * 48) == []
    growing = [f"{Decimal('1.05') ** h:.6f}" for h in range(72)]  # +5% an hour, 30x over 3 days
    assert feed_hours(SpendRateDetector(), growing) == []
    assert Decimal(growing[-1]) > 30


def test_spike_needs_history_and_a_factor_above_one() -> None:
    assert feed_hours(SpendRateDetector(), ["1.00", "10.00"]) == []  # one hour of history
    with pytest.raises(ValueError, match="factor"):
        SpendRateDetector(factor=1)


def test_spend_spikes_over_a_recorded_series() -> None:
    meter = make_test_meter()
    for n, (h, amount) in enumerate([(h, "0.50") for h in range(8)] + [(8, "2.00")]):
        meter.ledger.record(spend_span(T0 + h * HOUR, amount, n + 1))
    meter.flush()
    series = spend_series(meter.ledger, "hour")
    assert len(series) == 9
    (alert,) = spend_spikes(series)
    assert alert.amounts["spent"] == Decimal("2.00") and alert.amounts["baseline"] == Decimal(
        "0.50"
    )
    assert spend_spikes(series, factor=5) == []


def test_a_trace_repeating_web_search_with_the_same_args_is_flagged_while_it_runs() -> None:
    meter = make_test_meter(tools={"web_search": "0.005"})
    got: list[Alert] = []
    monitor = AnomalyMonitor(alerts=AlertDispatcher([CallbackSink(got.append)]))
    monitor.attach(meter)
    with meter.trace("agent", workflow="research") as t:
        for i in range(4):
            meter.record_tool("web_search", tool_args_hash="q-same")
            meter.record_tool("web_search", tool_args_hash=f"q-{i}")  # different args: fine
            assert monitor.process_pending() == []
        meter.record_tool("web_search", tool_args_hash="q-same")  # the 5th identical call
        found = monitor.process_pending()
        assert [a.kind for a in found] == ["anomaly.runaway_loop"]
        assert found[0].subject == t.trace_id and found[0].amounts["calls"] == 5
        assert got == found  # delivered through the sinks while the trace is still open
        meter.record_tool("web_search", tool_args_hash="q-same")
        assert monitor.process_pending() == []  # once per trace and key
    monitor.process_pending()
    assert len(got) == 1


def test_loop_fallback_key_is_tool_name_plus_input_size() -> None:
    det = LoopDetector(repeats=3)
    spans = [
        SpanRecord(trace_id="t" * 32, span_id=f"{i:016x}", parent_span_id="r" * 16,
                   name="read_page", kind=SpanKind.TOOL, start_ns=i, end_ns=i,
                   attributes={"tool_input_size": 120 if i < 3 else 99})
        for i in range(5)
    ]  # fmt: skip
    assert [det.add(s) is not None for s in spans] == [False, False, True, False, False]
    bare = [SpanRecord(trace_id="u" * 32, span_id=f"{i:016x}", parent_span_id="r" * 16,
                       name="read_page", kind=SpanKind.TOOL, start_ns=i, end_ns=i)
            for i in range(6)]  # fmt: skip
    assert all(det.add(s) is None for s in bare)  # nothing to compare arguments by


def test_accelerating_cost_without_output_is_a_loop() -> None:
    meter = make_test_meter()
    monitor = AnomalyMonitor(alerts=lambda a: None, detectors=("loops",))
    monitor.attach(meter)
    with meter.trace("agent"):
        for tokens in (1_000, 2_000, 4_000):
            meter.record_llm("gpt-4o", Usage(input_tokens=tokens, output_tokens=5))
        assert monitor.process_pending() == []
        meter.record_llm("gpt-4o", Usage(input_tokens=8_000, output_tokens=5))
        (alert,) = monitor.process_pending()
    assert alert.kind == "anomaly.runaway_loop" and "LLM calls" in alert.message
    with meter.trace("linear"):  # growing by the same step is not acceleration
        for tokens in (1_000, 2_000, 3_000, 4_000, 5_000):
            meter.record_llm("gpt-4o", Usage(input_tokens=tokens, output_tokens=5))
    with meter.trace("talkative"):  # real output: not a loop
        for tokens in (1_000, 2_000, 4_000, 8_000):
            meter.record_llm("gpt-4o", Usage(input_tokens=tokens, output_tokens=500))
    assert monitor.process_pending() == []


def tool_span(tool: str, at: int, n: int) -> SpanRecord:
    return SpanRecord(trace_id=f"{n:032x}", span_id=f"{n:016x}", name=tool, kind=SpanKind.TOOL,
                      start_ns=at, end_ns=at)  # fmt: skip


def test_tool_call_explosion_alerts_once_and_growth_does_not() -> None:
    det = ToolRateDetector()
    n = 0
    alerts: list[Alert] = []
    window = 5 * MINUTE
    for w in range(12):  # usual: 3 calls per 5 minutes
        for k in range(3):
            n += 1
            if (a := det.add(tool_span("web_search", T0 + w * window + k * MINUTE, n))) is not None:
                alerts.append(a)
    assert alerts == []
    for k in range(40):  # 40 calls within the next window: >10x
        n += 1
        if (
            a := det.add(tool_span("web_search", T0 + 12 * window + k * 1_000_000_000, n))
        ) is not None:
            alerts.append(a)
    assert len(alerts) == 1 and alerts[0].kind == "anomaly.tool_explosion"
    assert alerts[0].subject == "web_search" and alerts[0].amounts["usual"] == 3
    # another tool growing by one call a window stays far from 10x its recent mean
    det2 = ToolRateDetector(min_calls=1)
    quiet: list[Alert] = []
    for w in range(8):
        for _ in range(3 + w):
            n += 1
            if (a := det2.add(tool_span("kb", T0 + w * window, n))) is not None:
                quiet.append(a)
    assert quiet == []


def test_monitor_listener_only_enqueues_and_a_faulty_sink_is_contained() -> None:
    clock = FakeClock(start_ns=T0, step_ns=1_000_000)
    meter = make_test_meter(clock=clock)

    def broken(alert: Alert) -> None:
        raise RuntimeError("pager down")

    monitor = AnomalyMonitor(alerts=broken, detectors=("spend",))
    monitor.attach(meter)
    assert monitor.listener == monitor._pending.append  # pyright: ignore[reportPrivateUsage]
    usage = Usage(input_tokens=1_000, output_tokens=100)
    for _ in range(6):  # two calls an hour for six hours
        meter.record_llm("gpt-4o", usage)
        meter.record_llm("gpt-4o", usage)
        clock.advance(3_600 * 10**9)
    for _ in range(10):  # then ten within one hour: 5x
        meter.record_llm("gpt-4o", usage)
    assert monitor.pending == 22  # nothing evaluated on the recording thread
    found = monitor.process_pending()
    assert [a.kind for a in found] == ["anomaly.spend_rate"]
    assert found[0].amounts["spent"] == 6 * meter.price("gpt-4o", usage).total  # type: ignore[operator]
    assert monitor.faults == 1 and monitor.pending == 0 and monitor.alerts_sent == 0


def test_background_thread_evaluates_on_stop() -> None:
    meter = make_test_meter()
    got: list[Alert] = []
    monitor = AnomalyMonitor(alerts=got.append, detectors=("loops",))
    monitor.attach(meter)
    monitor.start(interval_s=3600)  # never ticks during the test; stop() evaluates last
    with meter.trace("agent"):
        for _ in range(5):
            meter.record_tool("web_search", cost="0.005", tool_args_hash="same")
    monitor.stop()
    assert [a.kind for a in got] == ["anomaly.runaway_loop"]
    meter.record_tool("web_search", cost="0.005")
    assert monitor.pending == 0  # detached


def test_tool_args_hash_is_canonical() -> None:
    from faremeter.analytics import tool_args_hash

    assert tool_args_hash({"q": "x", "n": 1}) == tool_args_hash({"n": 1.0, "q": "x"})
    assert tool_args_hash({"q": "x"}) != tool_args_hash({"q": "y"})
    assert len(tool_args_hash([1, 2])) == 32


def test_priced_tool_stamps_its_arguments_so_a_loop_is_caught() -> None:
    meter = make_test_meter()
    got: list[Alert] = []
    monitor = AnomalyMonitor(alerts=got.append, detectors=("loops",))
    monitor.attach(meter)

    @meter.priced_tool(name="web_search", price_per_call="0.005")
    def web_search(query: str, limit: int = 5) -> str:
        return f"results for {query}"

    with meter.trace("agent"):
        web_search("faremeter", 5)
        web_search(query="faremeter", limit=5)  # the same call, written otherwise
        web_search("other")
        assert monitor.process_pending() == []
        web_search("faremeter", limit=5.0)  # type: ignore[arg-type]  # 5.0 keys as 5
        web_search(limit=5, query="faremeter")
        web_search("faremeter", 5)
        found = monitor.process_pending()
    assert [a.kind for a in found] == ["anomaly.runaway_loop"]
    meter.flush()
    hashes = [s.attributes.get("tool_args_hash") for s in meter.ledger.spans(kind="tool")]
    assert len(set(hashes)) == 2 and None not in hashes
