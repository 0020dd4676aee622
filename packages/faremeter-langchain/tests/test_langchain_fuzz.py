# pyright: basic
"""Whatever shape a provider's usage takes, the handler never raises and never invents spend."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

from faremeter import Meter, SpanStatus, Usage
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler

counts = st.one_of(
    st.none(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([0, 1, 10**9, 2**63, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
details = st.one_of(
    st.none(),
    st.text(max_size=4),
    st.dictionaries(
        st.sampled_from(["cache_read", "cache_creation", "audio", "reasoning", "x"]),
        counts,
        max_size=4,
    ),
)
usage_shapes = st.one_of(
    st.none(),
    st.text(max_size=10),
    st.integers(),
    st.lists(counts, max_size=3),
    st.dictionaries(
        st.sampled_from(
            [
                "input_tokens",
                "output_tokens",
                "total_tokens",
                "prompt_tokens",
                "completion_tokens",
                "cache_read_input_tokens",
                "total_cost",
            ]
        ),
        counts,
        max_size=6,
    ).flatmap(
        lambda d: st.fixed_dictionaries(
            {},
            optional={"input_token_details": details, "output_token_details": details},
        ).map(lambda extra: {**d, **extra})
    ),
)
metadata_shapes = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.dictionaries(
        st.sampled_from(["model_name", "model", "model_id", "token_usage", "finish_reason"]),
        st.one_of(
            st.none(),
            st.text(max_size=12),
            st.integers(),
            st.sampled_from(["gpt-4o-mini", ""]),
            usage_shapes,
        ),
        max_size=4,
    ),
)


def message(usage: Any, meta: Any, content: Any) -> AIMessage:
    # model_construct: feed the handler what a buggy provider integration could
    # produce, past pydantic's validation.
    return AIMessage.model_construct(
        content=content, usage_metadata=usage, response_metadata=meta, tool_calls=[]
    )


@pytest.fixture(scope="module")
def fuzz_meter() -> Any:
    m = make_test_meter()
    yield m
    m.close()


@pytest.fixture(autouse=True)
def no_internal_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's catch-all must never be what saved a test: fail if it fires."""
    from faremeter_langchain import _handler

    def fail(msg: str, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(msg % args)

    monkeypatch.setattr(_handler.logger, "exception", fail)


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    gens=st.lists(
        st.lists(
            st.tuples(
                usage_shapes,
                metadata_shapes,
                st.one_of(st.text(max_size=20), st.none(), st.integers()),
            ),
            max_size=3,
        ),
        max_size=3,
    ),
    llm_output=st.one_of(st.none(), metadata_shapes),
    error=st.booleans(),
    start_meta=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["ls_model_name", "ls_provider", "user_id"]),
            st.one_of(st.text(max_size=8), st.integers(), st.none()),
        ),
    ),
)
def test_on_llm_end_never_raises(
    fuzz_meter: Meter, gens: Any, llm_output: Any, error: bool, start_meta: Any
) -> None:
    handler = FaremeterCallbackHandler(fuzz_meter)
    run_id = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run_id, metadata=start_meta)
    generations = [
        [
            ChatGeneration.model_construct(message=message(*g), text="", generation_info=None)
            for g in batch
        ]
        for batch in gens
    ]
    result = LLMResult.model_construct(generations=generations, llm_output=llm_output)
    if error:
        handler.on_llm_error(RuntimeError("x"), run_id=run_id, response=result)
    else:
        handler.on_llm_end(result, run_id=run_id)
    assert handler.open_runs == 0
    assert fuzz_meter._faults == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"input_tokens": -5, "output_tokens": 3, "total_tokens": -2},
        {"input_tokens": 10, "output_tokens": "many", "total_tokens": 10},
        {"input_tokens": 10**12, "output_tokens": 1, "total_tokens": 10**12 + 1},
        {"input_tokens": 10, "output_tokens": 1, "input_token_details": {"cache_read": 50}},
    ],
)
def test_invalid_counts_are_rejected_and_logged(
    bad: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    m = make_test_meter()
    handler = FaremeterCallbackHandler(m)
    run_id = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run_id, metadata={"ls_model_name": "gpt-4o-mini"})
    with caplog.at_level(logging.DEBUG, logger="faremeter"):
        handler.on_llm_end(
            LLMResult(generations=[[ChatGeneration(message=message(bad, {}, ""))]]), run_id=run_id
        )
    assert any("rejected usage from langchain" in r.getMessage() for r in caplog.records)
    (span,) = recorded_spans(m)
    # Rejected, not recorded as reported spend; nothing to estimate from either.
    assert span.status is SpanStatus.OK and (span.usage is None or span.usage.source == "estimated")


def test_plain_generation_and_llm_output_usage() -> None:
    m = make_test_meter()
    handler = FaremeterCallbackHandler(m)
    run_id = uuid.uuid4()
    handler.on_llm_start({}, ["prompt"], run_id=run_id)
    result = LLMResult(
        generations=[[Generation(text="done")]],
        llm_output={
            "token_usage": {"prompt_tokens": 10, "completion_tokens": 5},
            "model_name": "gpt-4o-mini",
        },
    )
    handler.on_llm_end(result, run_id=run_id)
    (span,) = recorded_spans(m)
    assert span.usage == Usage(input_tokens=10, output_tokens=5)
    assert span.model == "gpt-4o-mini" and span.cost.total is not None
