# pyright: basic
"""The "is a LiteLLM call running here?" probe the GenAI span processor asks.

A real LiteLLM custom provider (``CustomLLM``) stands in for a provider SDK
whose request another OTel instrumentation traces: it asks the probe from
inside the request, exactly where such an SDK span would start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import litellm
import litellm.main
import pytest
from litellm.exceptions import BadRequestError
from litellm.llms.custom_llm import CustomLLM

import faremeter_litellm
from faremeter.call_probes import inside_adapter_call
from faremeter.meter import Meter
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage
from faremeter_litellm._call_scope import call_wrapper_codes, inside_litellm_call

from .helpers import MESSAGES, mock

USAGE = Usage(input_tokens=70, output_tokens=7)


class _Probing(CustomLLM):
    """Answers every request, noting what the probes said while it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.inside: list[bool] = []  # inside_litellm_call()
        self.adapter: list[bool] = []  # faremeter.call_probes.inside_adapter_call()
        self.fail = False

    def _request(self) -> Any:
        self.inside.append(inside_litellm_call())
        self.adapter.append(inside_adapter_call())
        if self.fail:
            raise BadRequestError("refused", model="m", llm_provider="probing")
        return mock(USAGE)

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        return self._request()

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        return self._request()


@pytest.fixture
def probing() -> Iterator[_Probing]:
    handler = _Probing()
    previous = litellm.custom_provider_map
    litellm.custom_provider_map = [{"provider": "probing", "custom_handler": handler}]
    yield handler
    litellm.custom_provider_map = previous


@pytest.fixture
def meter() -> Iterator[Meter]:
    m = make_test_meter()
    yield m
    m.close()


def test_the_call_wrappers_of_this_litellm_are_found() -> None:
    """Pins the LiteLLM internals the probe relies on: an upgrade that renames them fails here."""
    codes = call_wrapper_codes()
    assert sorted(c.co_name for c in codes) == ["wrapper", "wrapper_async"]
    assert litellm.main.completion.__code__ in codes
    assert litellm.main.acompletion.__code__ in codes


def test_inside_a_sync_call_only_while_it_runs(probing: _Probing) -> None:
    assert inside_litellm_call() is False
    litellm.completion(model="probing/m", messages=MESSAGES)
    assert probing.inside == [True]
    assert inside_litellm_call() is False
    probing.fail = True
    with pytest.raises(BadRequestError):
        litellm.completion(model="probing/m", messages=MESSAGES)
    assert probing.inside == [True, True]
    assert inside_litellm_call() is False


async def test_inside_an_async_call_through_its_await_chain(probing: _Probing) -> None:
    await litellm.acompletion(model="probing/m", messages=MESSAGES)
    assert probing.inside == [True]
    assert inside_litellm_call() is False


async def test_inside_every_router_attempt(probing: _Probing) -> None:
    router = litellm.Router(  # pyright: ignore[reportPrivateImportUsage]
        model_list=[{"model_name": "g", "litellm_params": {"model": "probing/m"}}]
    )
    router.completion(model="g", messages=MESSAGES)
    await router.acompletion(model="g", messages=cast(Any, MESSAGES))
    assert probing.inside == [True, True]


def test_instrument_registers_the_probe_and_uninstrument_removes_it(
    probing: _Probing, meter: Meter
) -> None:
    handle = faremeter_litellm.instrument(meter)
    try:
        litellm.completion(model="probing/m", messages=MESSAGES)
        assert inside_adapter_call() is False  # the call has returned
        assert handle.flush(60)  # the timeout only turns a hang into a failure
    finally:
        handle.uninstrument()
    litellm.completion(model="probing/m", messages=MESSAGES)
    assert probing.adapter == [True, False]
    (record,) = [r for r in recorded_spans(meter) if r.usage is not None]
    assert record.usage == USAGE
