"""The adapter contract suite: one set of scenarios every adapter must pass.

Like ``langchain-tests`` for LangChain integrations, an adapter's test module
subclasses :class:`AdapterContract` and implements its abstract ``run_*``
hooks by driving its real framework (with the framework's own test doubles).
The base class asserts what every adapter owes its users: the span tree, exact
costs, one trace per run, no cross-talk, errors propagated unchanged, one
charge per provider request, honest usage, the same error class for the same
provider error, redacted error text and no bookkeeping left behind.

Every hook is abstract: an adapter that implements none cannot pass by
skipping. Capability flags (``supports_streaming``, ``has_response_cache`` …)
switch off scenarios a framework cannot express, and the skip says which flag.
Subclasses must not override the ``test_*`` methods; a guard test fails if
they do.

The scenario models report fixed usages on :attr:`AdapterContract.MODEL`;
tools ``lookup`` and ``delegate`` are priced per call by the fixture's catalog.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import ClassVar

import pytest

import faremeter
from faremeter.meter import Meter
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.tree import TraceTree
from faremeter.usage import Usage

__all__ = ["AdapterContract", "ProviderRateLimitError", "ScenarioError"]


class ScenarioError(RuntimeError):
    """The error the error scenario's model raises; it must reach the caller unchanged."""


class ProviderRateLimitError(Exception):
    """A provider's 429 as an SDK raises it: a status code and a chatty message."""

    status_code = 429


SECRET_KEY = "sk-proj-faremeterContract0123456789abcdef"
SECRET_BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYXJlbWV0ZXIifQ.c2lnbmF0dXJlLXNpZw"
LEAKY_MESSAGE = (
    f"Rate limit reached for key {SECRET_KEY} on https://user:hunter2@api.example.test/v1 "
    f"(Authorization: Bearer {SECRET_BEARER}); retry in 20s"
)


class AdapterContract(abc.ABC):
    """Base class of every adapter's contract tests. Subclass and implement the hooks."""

    MODEL = "gpt-4o-mini"
    UNKNOWN_MODEL = "faremeter-contract-unknown-model"
    FIRST_USAGE = Usage(input_tokens=1200, output_tokens=150)
    SECOND_USAGE = Usage(input_tokens=1500, output_tokens=300, cache_read_tokens=1024)
    INNER_USAGE = Usage(input_tokens=800, output_tokens=100)
    TOOL_PRICES: ClassVar[dict[str, Decimal]] = {
        "lookup": Decimal("0.001"),
        "delegate": Decimal("0.002"),
    }
    ERROR_MESSAGE = "model exploded mid-run"
    ScenarioError = ScenarioError
    CONCURRENT_RUNS = 10
    BOOKKEEPING_RUNS = 1_000
    REPLY = "The answer is forty-two, as computed from the lookup table."

    # -- capability flags ---------------------------------------------------------
    supports_streaming: ClassVar[bool] = True
    """The framework streams model output (sync)."""
    supports_async_streaming: ClassVar[bool] = True
    """The framework streams model output from async code."""
    has_response_cache: ClassVar[bool] = True
    """The framework has its own response cache (LangChain's LLM cache, LiteLLM's Cache)."""
    can_wrap_inner_calls: ClassVar[bool] = True
    """A framework model can run arbitrary code (an inner instrumented call) while it is open."""

    # -- hooks the adapter implements --------------------------------------------
    @abc.abstractmethod
    def run_two_level_agent(self, meter: Meter) -> None:
        """Agent: LLM (FIRST_USAGE) → tool ``lookup`` → LLM (SECOND_USAGE)."""

    @abc.abstractmethod
    def run_nested_agents(self, meter: Meter) -> None:
        """Outer agent: LLM (FIRST_USAGE) → tool ``delegate`` → LLM (SECOND_USAGE).

        The ``delegate`` tool runs an inner agent that makes one LLM call
        (INNER_USAGE).
        """

    @abc.abstractmethod
    def run_error_mid_run(self, meter: Meter) -> None:
        """LLM (FIRST_USAGE), then the model raises ``ScenarioError(ERROR_MESSAGE)``.

        The hook must let the error propagate.
        """

    @abc.abstractmethod
    async def arun_concurrent(self, meter: Meter, n: int) -> None:
        """Run ``n`` two-level agent runs concurrently; run ``i`` has ``user_id=f"u{i}"``."""

    @abc.abstractmethod
    def run_streaming(self, meter: Meter) -> None:
        """One streamed LLM call whose final chunk reports FIRST_USAGE (consumed to the end)."""

    @abc.abstractmethod
    async def arun_streaming(self, meter: Meter) -> None:
        """The same streamed call from async code (``astream`` / ``astream_chat`` …)."""

    @abc.abstractmethod
    def run_single_call(
        self, meter: Meter, model: str, usage: Usage | None, reply: str = "ok"
    ) -> None:
        """One LLM call on ``model`` answering ``reply``, reporting ``usage``.

        ``usage=None``: the response carries no usage at all.
        """

    @abc.abstractmethod
    def run_cached_call(self, meter: Meter) -> None:
        """The same call (FIRST_USAGE) twice; the framework's own cache serves the second."""

    @abc.abstractmethod
    def run_provider_error(self, meter: Meter, error: BaseException) -> None:
        """One LLM call whose provider raises ``error``; the hook lets it propagate."""

    @abc.abstractmethod
    def run_wrapping_call(self, meter: Meter, inner: Callable[[], None]) -> None:
        """One framework model call whose implementation calls ``inner()`` while it runs.

        ``inner`` records the provider request through the core (as a nested
        instrumented layer, e.g. LiteLLM under a framework model, would). The
        framework model itself reports FIRST_USAGE too.
        """

    @abc.abstractmethod
    def open_calls(self, meter: Meter) -> int:
        """How many calls the adapter still holds for ``meter`` (0 when idle)."""

    # -- fixture ----------------------------------------------------------------
    @pytest.fixture
    def meter(self) -> Iterator[Meter]:
        """An in-memory meter with the contract's tool prices, as the default meter."""
        m = make_test_meter(tools=self.TOOL_PRICES)
        previous = faremeter.set_meter(m)
        try:
            yield m
        finally:
            faremeter.set_meter(previous)
            m.close()

    # -- helpers ----------------------------------------------------------------
    def expected(self, meter: Meter, usage: Usage) -> Decimal:
        """What ``usage`` on :attr:`MODEL` costs in the meter's catalog."""
        total = meter.catalog.cost(self.MODEL, usage).total
        assert total is not None
        return total

    @staticmethod
    def llm_spans(spans: Sequence[SpanRecord]) -> list[SpanRecord]:
        """LLM spans in start order."""
        return [s for s in spans if s.kind is SpanKind.LLM]

    @staticmethod
    def ancestors(span: SpanRecord, spans: Sequence[SpanRecord]) -> list[SpanRecord]:
        """The chain of parents of ``span``, nearest first."""
        by_id = {s.span_id: s for s in spans}
        chain: list[SpanRecord] = []
        current = span
        while current.parent_span_id is not None and current.parent_span_id in by_id:
            current = by_id[current.parent_span_id]
            chain.append(current)
            if len(chain) > len(spans):
                raise AssertionError("cycle in span parents")
        return chain

    def assert_single_tree(self, spans: Sequence[SpanRecord]) -> TraceTree:
        """All spans share one trace with exactly one root, and every parent exists."""
        assert spans, "nothing was recorded"
        trace_ids = {s.trace_id for s in spans}
        assert len(trace_ids) == 1, f"expected one trace, got {len(trace_ids)}"
        ids = {s.span_id for s in spans}
        assert len(ids) == len(spans), "a span was recorded twice"
        roots = [s for s in spans if s.parent_span_id is None]
        assert len(roots) == 1, f"expected one root, got {[r.name for r in roots]}"
        orphans = [s.name for s in spans if s.parent_span_id and s.parent_span_id not in ids]
        assert not orphans, f"spans whose parent was never recorded: {orphans}"
        return TraceTree.from_spans(roots[0].trace_id, spans)

    def require(self, flag: str) -> None:
        """Skip, naming the flag, when the adapter declares it cannot do this."""
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False")

    def assert_usage(self, span: SpanRecord, usage: Usage) -> None:
        """Span carries exactly ``usage`` (reported) and its exact price."""
        assert span.usage is not None, f"{span.name} has no usage"
        assert (span.usage.input_tokens, span.usage.output_tokens) == (
            usage.input_tokens,
            usage.output_tokens,
        )
        assert span.usage.cache_read_tokens == usage.cache_read_tokens
        assert span.cost.total is not None, f"{span.name} unpriced: {span.cost.unpriced_reason}"

    # -- the contract -----------------------------------------------------------
    def test_two_level_agent(self, meter: Meter) -> None:
        self.run_two_level_agent(meter)
        spans = recorded_spans(meter)
        tree = self.assert_single_tree(spans)
        llm = self.llm_spans(spans)
        assert len(llm) == 2, f"expected 2 LLM spans, got {[s.name for s in llm]}"
        self.assert_usage(llm[0], self.FIRST_USAGE)
        self.assert_usage(llm[1], self.SECOND_USAGE)
        assert llm[0].cost.total == self.expected(meter, self.FIRST_USAGE)
        assert llm[1].cost.total == self.expected(meter, self.SECOND_USAGE)
        tools = [s for s in spans if s.kind is SpanKind.TOOL]
        assert [t.name for t in tools] == ["lookup"]
        assert tools[0].cost.total == self.TOOL_PRICES["lookup"]
        root = tree.roots[0].span
        assert root.kind in (SpanKind.AGENT, SpanKind.CHAIN)
        for span in [*llm, *tools]:
            assert root in self.ancestors(span, spans)
        leaves = sum((s.cost.total or Decimal(0) for s in spans), Decimal(0))
        expected_total = (
            self.expected(meter, self.FIRST_USAGE)
            + self.expected(meter, self.SECOND_USAGE)
            + self.TOOL_PRICES["lookup"]
        )
        assert tree.total_cost == leaves == expected_total

    def test_nested_agents(self, meter: Meter) -> None:
        self.run_nested_agents(meter)
        spans = recorded_spans(meter)
        tree = self.assert_single_tree(spans)
        llm = self.llm_spans(spans)
        assert len(llm) == 3, f"expected 3 LLM spans, got {[s.name for s in llm]}"
        inner = [
            s for s in llm if s.usage and s.usage.input_tokens == self.INNER_USAGE.input_tokens
        ]
        assert len(inner) == 1
        delegate = [s for s in spans if s.kind is SpanKind.TOOL and s.name == "delegate"]
        assert len(delegate) == 1
        assert delegate[0] in self.ancestors(inner[0], spans), "inner call not under the tool"
        expected_total = (
            self.expected(meter, self.FIRST_USAGE)
            + self.expected(meter, self.SECOND_USAGE)
            + self.expected(meter, self.INNER_USAGE)
            + self.TOOL_PRICES["delegate"]
        )
        assert tree.total_cost == expected_total
        node = tree.find_span(delegate[0].span_id)
        assert node is not None
        assert node.total_cost == self.TOOL_PRICES["delegate"] + self.expected(
            meter, self.INNER_USAGE
        )

    def test_error_mid_run(self, meter: Meter) -> None:
        with pytest.raises(ScenarioError) as info:
            self.run_error_mid_run(meter)
        assert type(info.value) is ScenarioError
        assert str(info.value) == self.ERROR_MESSAGE
        spans = recorded_spans(meter)
        errors = [s for s in spans if s.status is SpanStatus.ERROR]
        assert errors, "no error span was recorded"
        assert any(self.ERROR_MESSAGE in (s.error or "") for s in errors)
        ok_llm = [s for s in self.llm_spans(spans) if s.status is SpanStatus.OK]
        assert len(ok_llm) == 1, "the spend before the error was lost"
        self.assert_usage(ok_llm[0], self.FIRST_USAGE)
        assert {s.trace_id for s in spans} == {ok_llm[0].trace_id}

    def test_concurrent_runs_do_not_mix(self, meter: Meter) -> None:
        n = self.CONCURRENT_RUNS
        asyncio.run(self.arun_concurrent(meter, n))
        spans = recorded_spans(meter)
        by_trace: dict[str, list[SpanRecord]] = {}
        for s in spans:
            by_trace.setdefault(s.trace_id, []).append(s)
        assert len(by_trace) == n, f"expected {n} traces, got {len(by_trace)}"
        users: set[object] = set()
        per_run = self.expected(meter, self.FIRST_USAGE) + self.expected(meter, self.SECOND_USAGE)
        for trace_spans in by_trace.values():
            self.assert_single_tree(trace_spans)
            owners = {s.attributes.get("user_id") for s in trace_spans}
            assert len(owners) == 1, f"spans of one trace carry several users: {owners}"
            users |= owners
            llm = self.llm_spans(trace_spans)
            assert len(llm) == 2
            assert sum((s.cost.total or Decimal(0) for s in llm), Decimal(0)) == per_run
        assert users == {f"u{i}" for i in range(n)}

    def test_streaming(self, meter: Meter) -> None:
        self.require("supports_streaming")
        self.run_streaming(meter)
        llm = self.llm_spans(recorded_spans(meter))
        assert len(llm) == 1, f"a streamed call must be one span, got {len(llm)}"
        self.assert_usage(llm[0], self.FIRST_USAGE)
        assert llm[0].usage is not None and llm[0].usage.source == "reported"
        assert llm[0].cost.total == self.expected(meter, self.FIRST_USAGE)

    def test_unknown_model_is_unpriced_not_raised(self, meter: Meter) -> None:
        self.run_single_call(meter, self.UNKNOWN_MODEL, self.FIRST_USAGE, self.REPLY)
        llm = self.llm_spans(recorded_spans(meter))
        assert len(llm) == 1
        assert llm[0].cost.total is None, "an unknown model must be unpriced, not $0"
        assert llm[0].usage is not None and llm[0].usage.input_tokens == 1200
        assert self.UNKNOWN_MODEL in (llm[0].model or "") + (llm[0].cost.unpriced_reason or "")

    def test_nests_under_enclosing_trace_with_attribution(self, meter: Meter) -> None:
        with meter.trace("outer", user_id="u-ctx") as t, faremeter.attributes(team="t-ctx"):
            self.run_single_call(meter, self.MODEL, self.FIRST_USAGE, self.REPLY)
        spans = recorded_spans(meter)
        llm = self.llm_spans(spans)
        assert len(llm) == 1
        assert llm[0].trace_id == t.trace_id, "the call did not join the enclosing trace"
        assert llm[0].attributes.get("user_id") == "u-ctx"
        assert llm[0].attributes.get("team") == "t-ctx"
        assert t.cost == self.expected(meter, self.FIRST_USAGE)

    def test_async_streaming_is_charged_once(self, meter: Meter) -> None:
        self.require("supports_async_streaming")
        asyncio.run(self.arun_streaming(meter))
        llm = self.llm_spans(recorded_spans(meter))
        priced = [s for s in llm if s.cost.total]
        assert len(priced) == 1, f"one streamed request, charged {len(priced)} times"
        self.assert_usage(priced[0], self.FIRST_USAGE)
        assert priced[0].cost.total == self.expected(meter, self.FIRST_USAGE)

    def test_missing_usage_is_estimated_not_free(self, meter: Meter) -> None:
        self.run_single_call(meter, self.MODEL, None, self.REPLY)
        llm = self.llm_spans(recorded_spans(meter))
        assert len(llm) == 1
        assert llm[0].usage is not None, "no usage reported: estimate it, never drop it"
        assert llm[0].usage.source == "estimated"
        assert llm[0].usage.output_tokens > 0
        assert (llm[0].cost.total or 0) > 0

    def test_zero_usage_for_a_real_reply_is_estimated(self, meter: Meter) -> None:
        self.run_single_call(meter, self.MODEL, Usage(), self.REPLY)
        llm = self.llm_spans(recorded_spans(meter))
        assert len(llm) == 1
        usage = llm[0].usage
        assert usage is not None and usage.source != "reported", "0 tokens for a real reply"
        assert usage.output_tokens > 0
        assert (llm[0].cost.total or 0) > 0, "a visible reply was recorded as a free call"

    def test_cache_hit_lands_in_callers_trace_with_saved(self, meter: Meter) -> None:
        self.require("has_response_cache")
        with meter.trace("outer", user_id="u-cache") as t:
            self.run_cached_call(meter)
        meter.flush()
        assert t.pending == 0
        spans = recorded_spans(meter)
        llm = self.llm_spans(spans)
        hits = [s for s in llm if s.status is SpanStatus.CACHED]
        paid = [s for s in llm if s.status is SpanStatus.OK and s.cost.total]
        assert len(hits) == 1, f"expected one cached span, got {[s.status for s in llm]}"
        assert len(paid) == 1, "the first call is charged exactly once"
        hit = hits[0]
        assert hit.trace_id == t.trace_id, "a cache hit must land in the caller's trace"
        assert hit.attributes.get("user_id") == "u-cache"
        assert hit.cost.total == 0
        assert hit.saved == self.expected(meter, self.FIRST_USAGE)
        assert t.cost == self.expected(meter, self.FIRST_USAGE)

    def test_provider_error_class_and_redacted_text(self, meter: Meter) -> None:
        error = ProviderRateLimitError(LEAKY_MESSAGE)
        with pytest.raises(ProviderRateLimitError):
            self.run_provider_error(meter, error)
        errors = [s for s in recorded_spans(meter) if s.status is SpanStatus.ERROR]
        llm_errors = [s for s in errors if s.kind is SpanKind.LLM]
        assert llm_errors, "the failed call was not recorded"
        for span in errors:
            text = span.error or ""
            assert SECRET_KEY not in text and SECRET_BEARER not in text and "hunter2" not in text
        assert llm_errors[0].error_class == "rate_limit"
        # The class and the message survive (a framework may map the class to its own).
        assert "RateLimitError" in (llm_errors[0].error or "")
        assert "Rate limit reached" in (llm_errors[0].error or "")
        assert llm_errors[0].cost.total == 0, "a failed request is not billed"

    def test_nested_in_an_outer_model_call_is_charged_once(self, meter: Meter) -> None:
        with meter.trace("outer") as t, meter.span("outer-model", kind="llm"):
            self.run_single_call(meter, self.MODEL, self.FIRST_USAGE, self.REPLY)
        spans = recorded_spans(meter)
        llm = self.llm_spans(spans)
        assert len(llm) == 2, f"both layers are in the tree: {[s.name for s in llm]}"
        outer = next(s for s in llm if s.name == "outer-model")
        inner = next(s for s in llm if s is not outer)
        assert outer in self.ancestors(inner, spans)
        assert outer.cost.total == 0 and outer.attributes.get("wrapper") is True
        assert inner.cost.total == self.expected(meter, self.FIRST_USAGE)
        assert t.cost == self.expected(meter, self.FIRST_USAGE)

    def test_wrapping_an_inner_call_is_charged_once(self, meter: Meter) -> None:
        self.require("can_wrap_inner_calls")

        def inner() -> None:
            meter.record_llm(self.MODEL, self.FIRST_USAGE, name="provider-call")

        with meter.trace("outer") as t:
            self.run_wrapping_call(meter, inner)
        spans = recorded_spans(meter)
        llm = self.llm_spans(spans)
        assert len(llm) == 2, f"both layers are in the tree: {[s.name for s in llm]}"
        provider = next(s for s in llm if s.name == "provider-call")
        framework = next(s for s in llm if s is not provider)
        assert framework in self.ancestors(provider, spans), "inner call not under the model"
        assert framework.cost.total == 0, "the wrapper repeats the inner charge"
        assert provider.cost.total == self.expected(meter, self.FIRST_USAGE)
        assert t.cost == self.expected(meter, self.FIRST_USAGE)

    def test_bookkeeping_is_empty_after_many_runs(self, meter: Meter) -> None:
        for _ in range(self.BOOKKEEPING_RUNS):
            self.run_single_call(meter, self.MODEL, self.FIRST_USAGE, self.REPLY)
        meter.flush()
        assert self.open_calls(meter) == 0
        assert len(self.llm_spans(recorded_spans(meter))) == self.BOOKKEEPING_RUNS

    def test_no_overrides_DO_NOT_OVERRIDE(self) -> None:
        """The standard tests are the contract: subclasses implement hooks, never tests."""
        overridden = [
            name
            for name in dir(AdapterContract)
            if name.startswith("test_")
            and getattr(type(self), name) is not getattr(AdapterContract, name)
        ]
        assert not overridden, f"{type(self).__name__} overrides contract tests: {overridden}"
