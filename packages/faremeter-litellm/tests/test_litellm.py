"""LiteLLM adapter: parity with LiteLLM's prices, hook paths, Router, cache, fuzzing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import litellm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faremeter
import faremeter_litellm
from faremeter.meter import Meter
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage
from faremeter_litellm._recorder import Recorder

from .helpers import MESSAGES, mock

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def meter() -> Iterator[Meter]:
    m = make_test_meter()
    previous = faremeter.set_meter(m)
    yield m
    faremeter.set_meter(previous)
    m.close()


@pytest.fixture
def handle(meter: Meter) -> Iterator[faremeter_litellm.Instrumentation]:
    h = faremeter_litellm.instrument(meter)
    yield h
    h.uninstrument()


def llm(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.kind in (SpanKind.LLM, SpanKind.EMBEDDING)]


# -- price parity with LiteLLM --------------------------------------------------
PARITY_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "azure/gpt-4o",
    "gemini/gemini-2.5-pro",
    "gemini/gemini-2.5-flash",
    "vertex_ai/gemini-2.5-flash",
    "vertex_ai/gemini-2.0-flash",
    "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
    "bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "bedrock/amazon.nova-pro-v1:0",
    "bedrock/meta.llama3-1-70b-instruct-v1:0",
    "mistral/mistral-large-latest",
    "mistral/mistral-small-latest",
    "mistral/codestral-latest",
    "deepseek/deepseek-chat",
    "deepseek/deepseek-reasoner",
    "cohere_chat/command-r-08-2024",
    "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "fireworks_ai/accounts/fireworks/models/llama-v3p1-70b-instruct",
    "perplexity/sonar",
    "perplexity/sonar-pro",
    "cerebras/llama3.1-8b",
    "anthropic/claude-sonnet-4-5-20250929",
    "xai/grok-4.3",
    "groq/llama-3.1-8b-instant",
    "gemini/gemini-2.0-flash",
]


def _bare(model: str) -> str:
    return model.split("/", 1)[1] if "/" in model else model


@pytest.mark.parametrize("model", PARITY_MODELS)
def test_cost_matches_litellm_response_cost(
    meter: Meter, handle: faremeter_litellm.Instrumentation, model: str
) -> None:
    usage = Usage(
        input_tokens=3000, output_tokens=500, cache_read_tokens=1024, reasoning_tokens=200
    )
    litellm.completion(
        model=model, messages=MESSAGES, mock_response=mock(usage, model=_bare(model))
    )
    assert handle.flush()
    [span] = llm(meter)
    assert span.usage is not None and span.usage.cache_read_tokens == 1024
    theirs = span.attributes.get("litellm_response_cost")
    if theirs is None:
        # LiteLLM reported 0.0 ("not in my map"): faremeter must not call it free either.
        assert span.cost.total is None, span.cost
        return
    assert span.cost.total is not None, span.cost.unpriced_reason
    assert abs(span.cost.total - Decimal(repr(theirs))) <= Decimal("1e-12"), (span.cost, theirs)


def test_parity_covers_30_priced_models(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    usage = Usage(input_tokens=3000, output_tokens=500, cache_read_tokens=1024)
    for model in PARITY_MODELS:
        litellm.completion(
            model=model, messages=MESSAGES, mock_response=mock(usage, model=_bare(model))
        )
    assert handle.flush()
    priced = [s for s in llm(meter) if s.attributes.get("litellm_response_cost") is not None]
    assert len(priced) >= 30
    providers = {s.provider for s in priced}
    assert {"openai", "azure", "gemini", "vertex_ai", "bedrock", "mistral", "deepseek"} <= providers


def test_litellm_zero_for_unknown_model_is_unpriced(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    litellm.completion(
        model="my-private-finetune",
        custom_llm_provider="openai",
        messages=MESSAGES,
        mock_response=mock(Usage(input_tokens=10, output_tokens=5), model="my-private-finetune"),
    )
    assert handle.flush()
    [span] = llm(meter)
    assert span.cost.total is None and span.cost.unpriced_reason
    assert "litellm_response_cost" not in span.attributes


# -- hook paths -----------------------------------------------------------------
class Counting(faremeter_litellm.FaremeterLogger):
    def __init__(self, meter: Meter) -> None:
        super().__init__(meter)
        self.calls: list[str] = []

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.calls.append(
            "sync"
            if (kwargs.get("litellm_params") or {}).get("acompletion") is not True
            else "sync-for-async"
        )
        super().log_success_event(kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.calls.append("async")
        await super().async_log_success_event(kwargs, response_obj, start_time, end_time)


@pytest.fixture
def counting(meter: Meter) -> Iterator[Counting]:
    logger = Counting(meter)
    litellm.callbacks.append(logger)
    yield logger
    faremeter_litellm.Instrumentation(logger).uninstrument()


def test_sync_completion_records_once_via_sync_hook(meter: Meter, counting: Counting) -> None:
    litellm.completion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response=mock(Usage(input_tokens=5))
    )
    assert faremeter_litellm.Instrumentation(counting).flush()
    assert counting.calls == ["sync"]
    assert len(llm(meter)) == 1


async def test_acompletion_fires_async_hook_only_and_records_once(
    meter: Meter, counting: Counting
) -> None:
    await litellm.acompletion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response=mock(Usage(input_tokens=5))
    )
    assert await faremeter_litellm.Instrumentation(counting).aflush()
    assert counting.calls == ["async"]
    assert len(llm(meter)) == 1


async def test_100_concurrent_acompletions_each_recorded_once(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    async def one(i: int) -> None:
        with faremeter.attributes(user_id=f"u{i}"):
            await litellm.acompletion(
                model="gpt-4o-mini",
                messages=MESSAGES,
                mock_response=mock(Usage(input_tokens=100 + i)),
            )

    await asyncio.gather(*(one(i) for i in range(100)))
    assert await handle.aflush(timeout=20)
    spans = llm(meter)
    assert len(spans) == 100
    assert sorted(s.usage.input_tokens for s in spans if s.usage) == list(range(100, 200))
    assert all(
        s.attributes["user_id"] == f"u{s.usage.input_tokens - 100}" for s in spans if s.usage
    )


def test_sync_and_async_hooks_for_one_call_record_once(meter: Meter) -> None:
    rec = Recorder(meter)
    kwargs = {"litellm_call_id": "c1", "model": "gpt-4o-mini", "custom_llm_provider": "openai"}
    rec.start(kwargs)
    response = mock(Usage(input_tokens=10, output_tokens=2))
    rec.success(kwargs, response, None, None)
    rec.success(kwargs, response, None, None)
    rec.failure(kwargs, None, None, None)
    assert len(llm(meter)) == 1


# -- streaming ------------------------------------------------------------------
async def test_async_stream_priced_once_with_final_usage(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    usage = Usage(input_tokens=1200, output_tokens=150)
    stream = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        mock_response=mock(usage),
        stream=True,
        stream_options={"include_usage": True},
    )
    async for _ in stream:
        pass
    assert await handle.aflush()
    [span] = llm(meter)
    assert span.usage is not None and span.usage.input_tokens == 1200
    assert span.cost.total == meter.price("gpt-4o-mini", usage).total


def test_response_without_usage_is_estimated(meter: Meter) -> None:
    rec = Recorder(meter)
    kwargs = {
        "litellm_call_id": "c2",
        "model": "gpt-4o-mini",
        "custom_llm_provider": "openai",
        "messages": [{"role": "user", "content": "how many tokens is this prompt?"}],
    }
    response = {"choices": [{"message": {"content": "quite a few, I would say"}}]}
    rec.success(kwargs, response, None, None)
    [span] = llm(meter)
    assert span.usage is not None and span.usage.source == "estimated"
    assert span.usage.input_tokens > 0 and span.usage.output_tokens > 0
    assert span.cost.total and span.cost.total > 0


# -- cache hits -----------------------------------------------------------------
def test_cache_hit_payload_is_cached_span_with_saved(meter: Meter) -> None:
    rec = Recorder(meter)
    usage = Usage(input_tokens=2000, output_tokens=300)
    kwargs = {
        "litellm_call_id": "hit",
        "model": "gpt-4o-mini",
        "custom_llm_provider": "openai",
        "cache_hit": True,
        "response_cost": 0.0,
    }
    rec.success(kwargs, mock(usage), None, None)
    [span] = llm(meter)
    assert span.status is SpanStatus.CACHED and span.cost.total == 0
    assert span.saved == meter.price("gpt-4o-mini", usage).total > 0


def test_cache_hit_is_cached_span_with_saved(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    # LiteLLM 1.106's SDK cache lookup imports proxy modules that need fastapi.
    pytest.importorskip(
        "fastapi", reason="litellm's local cache path imports litellm.proxy (needs fastapi)"
    )
    from litellm.caching.caching import Cache

    litellm.cache = Cache(type="local")
    try:
        usage = Usage(input_tokens=2000, output_tokens=300)
        for _ in range(2):
            litellm.completion(
                model="gpt-4o-mini", messages=MESSAGES, mock_response=mock(usage), caching=True
            )
            handle.flush()
    finally:
        litellm.cache = None
    spans = llm(meter)
    # Not by start time: the hit's start is the meter's (test) clock minus the
    # real duration LiteLLM measured, which on a slow machine sorts it first.
    assert sorted(s.status.value for s in spans) == ["cached", "ok"]
    hit = next(s for s in spans if s.status is SpanStatus.CACHED)
    assert hit.cost.total == 0
    assert hit.saved == meter.price("gpt-4o-mini", usage).total


# -- attribution ----------------------------------------------------------------
def test_metadata_and_context_attribution(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    with meter.trace("run", workflow="wf") as t, faremeter.attributes(step="plan"):
        litellm.completion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            mock_response=mock(Usage(input_tokens=7)),
            metadata={
                "user_id": "u9",
                "team": "search",
                "api_key": "sk-secret",
                "faremeter": {"feature": "f1"},
            },
        )
        handle.flush()
    [span] = llm(meter)
    assert span.trace_id == t.trace_id
    attrs = dict(span.attributes)
    assert attrs["user_id"] == "u9" and attrs["team"] == "search" and attrs["feature"] == "f1"
    assert attrs["workflow"] == "wf" and attrs["step"] == "plan"
    assert "sk-secret" not in str(attrs)


def test_proxy_key_attribution_beats_what_the_request_claims() -> None:
    from faremeter_litellm._translate import attribution

    # What the proxy sends for a virtual key: its own keys, written over the client's.
    client = {"user_id": "victim", "team": "other", "faremeter": {"team_id": "t-x"}}
    key = {"user_api_key_user_id": "alice", "user_api_key_team_id": "t-1"}
    key |= {"user_api_key_team_alias": "search", "user_api_key_end_user_id": "end-9"}
    out = attribution({"user": "end-9", "litellm_params": {"metadata": {**client, **key}}})
    assert out["user_id"] == "alice" and out["team_id"] == "t-1" and out["team"] == "search"
    assert out["end_user"] == "end-9"
    # The master key's placeholder user is no identity: the request may name one.
    admin = {"user_api_key_user_id": "default_user_id"}
    md = {"user_id": "u-1", **admin}
    assert attribution({"litellm_params": {"metadata": md}})["user_id"] == "u-1"
    assert attribution({"litellm_params": {"metadata": admin}})["user_id"] == "default_user_id"
    assert attribution({"user": "end-1", "litellm_params": {"metadata": admin}})["user_id"] == (
        "end-1"
    )


def test_sync_stream_keeps_caller_context(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    # LiteLLM ends a sync stream on a logging thread without the caller's context;
    # the span was started in the pre-call hook, where the context was still there.
    with meter.trace("run", user_id="u-stream") as t:
        for _ in litellm.completion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            mock_response=mock(Usage(input_tokens=9, output_tokens=1)),
            stream=True,
            stream_options={"include_usage": True},
        ):
            pass
        handle.flush()
    [span] = llm(meter)
    assert span.trace_id == t.trace_id and span.attributes["user_id"] == "u-stream"


# -- Router ---------------------------------------------------------------------
def _router(**kw: Any) -> litellm.Router:
    return litellm.Router(
        model_list=[
            {
                "model_name": "primary",
                "litellm_params": {"model": "gpt-4o", "mock_response": "litellm.RateLimitError"},
                "model_info": {"id": "dep-primary"},
            },
            {
                "model_name": "backup",
                "litellm_params": {
                    "model": "gpt-4o-mini",
                    "mock_response": mock(Usage(input_tokens=400, output_tokens=40)),
                },
                "model_info": {"id": "dep-backup"},
            },
        ],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
        **kw,
    )


async def test_router_fallback_is_one_call_with_two_attempts(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    router = _router()
    with meter.trace("agent") as t:
        await router.acompletion(model="primary", messages=MESSAGES, metadata={"user_id": "u1"})
        assert await handle.aflush()
    spans = recorded_spans(meter)
    [call] = [s for s in spans if s.name == "litellm.router:primary"]
    attempts = [s for s in spans if s.parent_span_id == call.span_id]
    assert [a.status for a in attempts] == [SpanStatus.ERROR, SpanStatus.OK]
    failed, ok = attempts
    assert failed.error_class == "rate_limit" and failed.attributes["model_id"] == "dep-primary"
    assert (
        ok.attributes["model_id"] == "dep-backup" and ok.attributes["deployment"] == "gpt-4o-mini"
    )
    assert call.status is SpanStatus.FALLBACK
    assert call.attributes["fallback_reason"] == "rate_limit"
    assert call.attributes["served_model_group"] == "backup"
    assert call.attributes["user_id"] == "u1" and call.parent_span_id is not None
    expected = meter.price("gpt-4o-mini", Usage(input_tokens=400, output_tokens=40)).total
    node = t.tree().find_span(call.span_id)
    assert node is not None and node.total_cost == expected == t.cost


def test_router_all_attempts_fail_closes_call_as_error(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "only",
                "litellm_params": {"model": "gpt-4o", "mock_response": "litellm.RateLimitError"},
            }
        ],
        num_retries=1,
        retry_after=0,
    )
    with pytest.raises(litellm.RateLimitError):
        router.completion(model="only", messages=MESSAGES)
    assert handle.flush()
    spans = recorded_spans(meter)
    [call] = [s for s in spans if s.kind is SpanKind.CHAIN]
    attempts = [s for s in spans if s.parent_span_id == call.span_id]
    assert len(attempts) == 2 and all(a.status is SpanStatus.ERROR for a in attempts)
    assert call.status is SpanStatus.ERROR and call.error_class == "rate_limit"
    assert call.cost.total == 0


def test_user_errors_propagate_unchanged(
    meter: Meter, handle: faremeter_litellm.Instrumentation
) -> None:
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(
            model="gpt-4o", messages=MESSAGES, mock_response="litellm.RateLimitError"
        )
    handle.flush()
    [span] = llm(meter)
    assert span.status is SpanStatus.ERROR and span.error_class == "rate_limit"


# -- fuzzing --------------------------------------------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8)
)
_json = st.recursive(
    _scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=12), c, max_size=4)
    ),
    max_leaves=12,
)
_usage = st.dictionaries(
    st.sampled_from(
        [
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "input_tokens",
            "output_tokens",
        ]
    ),
    st.one_of(
        _json, st.dictionaries(st.sampled_from(["cached_tokens", "reasoning_tokens"]), _scalars)
    ),
)
_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "litellm_call_id": st.one_of(st.text(max_size=4), _scalars),
        "model": _scalars,
        "custom_llm_provider": _scalars,
        "stream": _scalars,
        "cache_hit": _scalars,
        "response_cost": _scalars,
        "call_type": st.sampled_from(["completion", "embedding", "x"]),
        "litellm_params": st.one_of(_json, st.fixed_dictionaries({"metadata": _json})),
        "standard_logging_object": _json,
        "messages": _json,
        "exception": st.sampled_from([None, ValueError("x"), TimeoutError()]),
        "combined_usage_object": _usage,
        "user": _scalars,
    },
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kwargs=_kwargs, usage=_usage, start=st.booleans())
def test_fuzzed_payloads_never_raise(
    kwargs: dict[str, Any], usage: dict[str, Any], start: bool
) -> None:
    m = make_test_meter()
    logger = faremeter_litellm.FaremeterLogger(m)
    if start:
        logger.log_pre_api_call(kwargs.get("model"), [], kwargs)
    logger.log_success_event(kwargs, {"usage": usage, "choices": usage}, None, None)
    logger.log_failure_event(kwargs, None, "bad", object())
    asyncio.run(logger.async_log_success_event(kwargs, litellm.ModelResponse(), None, None))
    logger.recorder.close_idle_calls(0)


# -- registration ---------------------------------------------------------------
def test_instrument_is_idempotent_and_uninstrument_removes_everywhere(meter: Meter) -> None:
    h1 = faremeter_litellm.instrument(meter)
    h2 = faremeter_litellm.instrument(meter)
    assert h1 is h2 and sum(c is h1.logger for c in litellm.callbacks) == 1
    litellm.completion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response=mock(Usage(input_tokens=3))
    )
    h1.flush()
    h1.uninstrument()
    for name in (
        "callbacks",
        "input_callback",
        "success_callback",
        "failure_callback",
        "_async_success_callback",
        "_async_failure_callback",
    ):
        assert all(c is not h1.logger for c in getattr(litellm, name)), name
    litellm.completion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response=mock(Usage(input_tokens=3))
    )
    h1.flush()
    assert len(llm(meter)) == 1


def test_import_does_not_import_litellm() -> None:
    code = (
        "import sys, faremeter, faremeter_litellm\n"
        "assert 'litellm' not in sys.modules, 'litellm imported eagerly'\n"
        "faremeter_litellm.FaremeterLogger\n"
        "assert 'litellm' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_proxy_handler_loads_like_the_proxy_does(tmp_path: Path) -> None:
    code = (
        "from litellm.proxy.types_utils.utils import get_instance_fn\n"
        "import faremeter_litellm\n"
        "h = get_instance_fn('faremeter_litellm.proxy.handler')\n"
        "assert isinstance(h, faremeter_litellm.FaremeterLogger)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=_env(tmp_path))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    import os

    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", **extra)
    env.setdefault("FAREMETER_LEDGER_URL", f"sqlite:///{tmp_path}/l.db")
    return env


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.mark.postgres
def test_proxy_handler_records_into_shared_postgres_ledger(tmp_path: Path) -> None:
    import uuid

    try:
        probe = Meter(ledger=PG_URL)
        probe.ledger.spans(limit=1)
    except Exception as exc:  # pragma: no cover - environment without PostgreSQL
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({exc}); start it to run this test")
    marker = uuid.uuid4().hex
    code = (
        "import asyncio, litellm\n"
        "from litellm.proxy.types_utils.utils import get_instance_fn\n"
        "import faremeter_litellm\n"
        "handler = get_instance_fn('faremeter_litellm.proxy.handler')\n"
        "litellm.callbacks = [handler]\n"
        "async def main():\n"
        "    await litellm.acompletion(model='gpt-4o-mini', mock_response='hi',\n"
        "        messages=[{'role': 'user', 'content': 'x'}],\n"
        f"        metadata={{'user_api_key_user_id': '{marker}'}})\n"
        "    assert await faremeter_litellm.Instrumentation(handler).aflush()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        timeout=120,
        env=_env(tmp_path, FAREMETER_LEDGER_URL=PG_URL),
    )
    spans = [s for s in probe.ledger.spans() if s.attributes.get("user_id") == marker]
    probe.close()
    assert len(spans) == 1 and spans[0].cost.total and spans[0].cost.total > 0


def test_docs_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "litellm_logger.py")],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
        env=_env(Path("/tmp")),
    )
    assert "total" in out.stdout
