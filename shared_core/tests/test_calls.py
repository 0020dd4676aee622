"""The core call lifecycle: parents, honesty, streams, bounds, flush, redaction."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from faremeter import BudgetExceeded, SpanKind, SpanStatus, Usage
from faremeter.calls import CallTracker, safe_hook
from faremeter.estimate import reconcile_usage
from faremeter.meter import Meter
from faremeter.redact import describe_error, redact
from faremeter.testing import make_test_meter, recorded_spans

MODEL = "gpt-4o-mini"
REPLY = "A reply that is clearly longer than nothing at all."


@pytest.fixture
def meter() -> Meter:
    return make_test_meter()


def test_parent_by_framework_key_then_by_context(meter: Meter) -> None:
    calls = CallTracker(meter)
    with meter.trace("run") as t:
        calls.start("chain", name="node", kind=SpanKind.CHAIN)
        calls.start("llm", name=MODEL, parent_key="chain", model=MODEL)
        calls.end("llm", usage=Usage(input_tokens=10, output_tokens=5), completion="ok")
        calls.end("chain")
    spans = {s.name: s for s in recorded_spans(meter)}
    assert spans["node"].parent_span_id == t.span_id
    assert spans[MODEL].parent_span_id == spans["node"].span_id
    assert calls.open_calls == 0


def test_alias_stands_for_its_parent(meter: Meter) -> None:
    calls = CallTracker(meter)
    calls.start("root", name="agent", kind=SpanKind.AGENT)
    calls.alias("plumbing", "root")
    calls.start("llm", name=MODEL, parent_key="plumbing", model=MODEL)
    calls.end("llm", usage=Usage(input_tokens=1, output_tokens=1))
    calls.end("plumbing")  # records nothing
    calls.end("root")
    spans = {s.name: s for s in recorded_spans(meter)}
    assert set(spans) == {"agent", MODEL}
    assert spans[MODEL].parent_span_id == spans["agent"].span_id


@pytest.mark.parametrize(
    ("reported", "source"),
    [
        (None, "estimated"),
        (Usage(), "estimated"),
        (Usage(input_tokens=900, output_tokens=0), "mixed"),
        (Usage(input_tokens=900, output_tokens=40), "reported"),
    ],
)
def test_usage_honesty(meter: Meter, reported: Usage | None, source: str) -> None:
    calls = CallTracker(meter)
    calls.start(1, name=MODEL, model=MODEL, prompt=["What is the answer to everything?"])
    record = calls.end(1, usage=reported, completion=REPLY)
    assert record is not None and record.usage is not None
    assert record.usage.source == source
    assert record.usage.output_tokens > 0
    if reported is not None and reported.input_tokens:
        assert record.usage.input_tokens == reported.input_tokens  # reported counts kept
    assert (record.cost.total or 0) > 0


def test_reconcile_keeps_a_reported_zero_for_an_empty_reply() -> None:
    usage = Usage(input_tokens=10, output_tokens=0)
    assert reconcile_usage(usage, model=MODEL, prompt=["hi"], completion="") is usage
    assert reconcile_usage(None, model=MODEL, prompt=None, completion=None) is None


def test_cache_hit_is_free_and_records_saved(meter: Meter) -> None:
    calls = CallTracker(meter)
    usage = Usage(input_tokens=2000, output_tokens=300)
    calls.start(1, name=MODEL, model=MODEL)
    record = calls.end(1, usage=usage, completion="x", cached=True)
    assert record is not None
    assert record.status is SpanStatus.CACHED and record.cost.total == 0
    assert record.saved == meter.price(MODEL, usage).total


def test_price_as_prices_a_deployment_by_its_base_model(meter: Meter) -> None:
    calls = CallTracker(meter)
    usage = Usage(input_tokens=1000, output_tokens=100)
    calls.start(1, name="my-azure-deployment", model="my-azure-deployment")
    record = calls.end(1, usage=usage, price_as="gpt-4o")
    assert record is not None and record.cost.total == meter.price("gpt-4o", usage).total
    assert record.model == "my-azure-deployment"


def test_failure_is_classified_redacted_and_free(meter: Meter) -> None:
    class RateLimitError(Exception):
        status_code = 429

    calls = CallTracker(meter)
    prompt = "my private question about the merger"
    calls.start(1, name=MODEL, model=MODEL, prompt=[prompt])
    error = RateLimitError(f"429 for key sk-abcdefghijklmnop1234 while answering {prompt!r}")
    record = calls.fail(1, error)
    assert record is not None
    assert record.status is SpanStatus.ERROR and record.error_class == "rate_limit"
    assert record.cost.total == 0
    assert "sk-abcdefghijklmnop1234" not in (record.error or "")
    assert prompt not in (record.error or "")
    assert (record.error or "").startswith("RateLimitError: ")


def test_a_stream_cut_short_is_billed_for_what_was_generated(meter: Meter) -> None:
    calls = CallTracker(meter)
    usage = Usage(input_tokens=500, output_tokens=50)
    calls.start(1, name=MODEL, model=MODEL)
    record = calls.fail(1, "connection reset mid-stream", usage=usage)
    assert record is not None and record.cost.total == meter.price(MODEL, usage).total


def test_deferred_stream_ends_with_its_last_event(meter: Meter) -> None:
    calls = CallTracker(meter)
    calls.start("s", name=MODEL, model=MODEL, prompt="hi")
    calls.defer("s")
    assert calls.deferred("s")
    calls.note("s", text="Hello ")
    calls.note("s", text="world", usage=Usage(input_tokens=8, output_tokens=2))
    record = calls.end("s")
    assert record is not None and record.usage == Usage(input_tokens=8, output_tokens=2)


def test_abandoned_stream_is_swept_with_what_it_showed(meter: Meter) -> None:
    now = [0.0]
    calls = CallTracker(meter, stream_ttl_s=10, monotonic=lambda: now[0])
    calls.start("s", name=MODEL, model=MODEL, prompt="hi")
    calls.defer("s")
    calls.note("s", text="partial answer")
    assert calls.sweep() == 0
    now[0] = 11
    assert calls.sweep() == 1
    [span] = recorded_spans(meter)
    assert span.attributes.get("abandoned") is True
    assert span.usage is not None and span.usage.source == "estimated"
    assert calls.open_calls == 0


def test_open_calls_are_bounded(meter: Meter) -> None:
    calls = CallTracker(meter, max_open=3)
    for i in range(5):
        calls.start(i, name=MODEL, model=MODEL)
    assert calls.open_calls == 3
    never = [s for s in recorded_spans(meter) if s.attributes.get("abandoned")]
    assert len(never) == 2 and all(s.cost.total is None for s in never)


def test_flush_waits_for_calls_that_end_on_another_thread(meter: Meter) -> None:
    calls = CallTracker(meter, waits_on_flush=True)
    release = threading.Event()
    with meter.trace("run") as t:
        calls.start("c", name=MODEL, model=MODEL)

        def logging_thread() -> None:
            release.wait()
            calls.end("c", usage=Usage(input_tokens=100, output_tokens=10))

        threading.Thread(target=logging_thread).start()
    assert t.pending == 1 and t.cost == 0
    threading.Timer(0.05, release.set).start()
    assert meter.flush(timeout=30)
    assert t.pending == 0
    assert t.cost == meter.price(MODEL, Usage(input_tokens=100, output_tokens=10)).total


def test_flush_gives_up_at_its_timeout(meter: Meter) -> None:
    calls = CallTracker(meter, waits_on_flush=True)
    calls.start("c", name=MODEL, model=MODEL)
    started = time.monotonic()
    assert meter.flush(timeout=0.05) is False
    assert time.monotonic() - started < 30  # bounded, whatever the machine's speed
    calls.close()


def test_wrapper_rule_one_charge(meter: Meter) -> None:
    outer, inner = CallTracker(meter), CallTracker(meter)
    usage = Usage(input_tokens=100, output_tokens=10)
    with meter.trace("run") as t:
        outer.start("o", name="framework", model=MODEL, activate=True)
        inner.start("i", name="provider", model=MODEL)
        inner.end("i", usage=usage)
        outer.end("o", usage=usage)
    spans = {s.name: s for s in recorded_spans(meter)}
    assert spans["framework"].cost.total == 0 and spans["framework"].usage is None
    assert spans["provider"].cost.total == meter.price(MODEL, usage).total == t.cost


def test_budget_denial_is_recorded_and_raised() -> None:
    class DenyAll:
        def reserve(self, **kw: object) -> object:
            raise BudgetExceeded("over budget")

    meter = make_test_meter(budgets=DenyAll())
    calls = CallTracker(meter)
    with pytest.raises(BudgetExceeded):
        calls.start(1, name=MODEL, model=MODEL, prompt="hi", max_tokens=10)
    [span] = recorded_spans(meter)
    assert span.status is SpanStatus.DENIED and span.error_class == "budget"
    assert calls.open_calls == 0


def test_reservation_settles_to_the_real_cost() -> None:
    settled: list[Decimal | None] = []

    class Reservation:
        def settle(self, actual: Decimal | None) -> None:
            settled.append(actual)

        def release(self) -> None:
            settled.append(None)

    class Manager:
        def reserve(self, **kw: object) -> Reservation:
            return Reservation()

    meter = make_test_meter(budgets=Manager())
    calls = CallTracker(meter)
    usage = Usage(input_tokens=100, output_tokens=10)
    calls.start(1, name=MODEL, model=MODEL)
    calls.end(1, usage=usage)
    calls.start(2, name=MODEL, model=MODEL)
    calls.fail(2, RuntimeError("boom"))
    assert settled == [meter.price(MODEL, usage).total, None]


def test_safe_hook_swallows_faults_but_not_budget_denials(caplog: pytest.LogCaptureFixture) -> None:
    @safe_hook("test")
    def broken() -> None:
        raise KeyError("bug")

    @safe_hook("test")
    def denied() -> None:
        raise BudgetExceeded("no")

    assert broken() is None
    assert any("hook broken failed" in r.getMessage() for r in caplog.records)
    with pytest.raises(BudgetExceeded):
        denied()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-abc123def456ghi789", "sk-proj-abc123def456ghi789"),
        ("headers={'Authorization': 'Bearer abc.def.ghi123456'}", "abc.def.ghi123456"),
        ("POST https://admin:s3cret@db.internal/v1 failed", "s3cret"),
        ("GET https://x.test/v1?key=AIzaSyA1234567890abcdefghij", "AIzaSyA1234567890abcdefghij"),
        ("x-api-key: 0123456789abcdef0123", "0123456789abcdef0123"),
    ],
)
def test_redact_removes_credentials(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_describe_error_keeps_prompt_only_when_storing_content() -> None:
    prompt = "the secret launch date is March 3rd"
    error = ValueError(f"bad request: {prompt}")
    assert prompt not in (describe_error(error, prompts=[prompt]) or "")
    assert prompt in (describe_error(error, prompts=[prompt], keep_content=True) or "")
    long = describe_error(ValueError("x" * 5000)) or ""
    assert len(long) <= 500
