"""The core's adapter contract, driven through real ``litellm.completion`` calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import litellm
import pytest

import faremeter_litellm
from faremeter.meter import Meter
from faremeter.testing.contract import AdapterContract
from faremeter.usage import Usage

from .helpers import MESSAGES, mock


@pytest.fixture(autouse=True)
def _clean_callbacks() -> Iterator[None]:
    yield
    handle = faremeter_litellm._active  # pyright: ignore[reportPrivateUsage]
    if handle is not None:
        handle.uninstrument()


class TestLiteLLMContract(AdapterContract):
    def _call(self, usage: Usage, model: str | None = None) -> None:
        litellm.completion(
            model=model or self.MODEL,
            messages=MESSAGES,
            mock_response=mock(usage, model=model or self.MODEL),
        )

    def run_two_level_agent(self, meter: Meter) -> None:
        handle = faremeter_litellm.instrument(meter)
        lookup = meter.priced_tool(name="lookup")(lambda q: f"facts about {q}")
        with meter.trace("agent"):
            self._call(self.FIRST_USAGE)
            lookup("x")
            self._call(self.SECOND_USAGE)
        assert handle.flush()

    def run_nested_agents(self, meter: Meter) -> None:
        handle = faremeter_litellm.instrument(meter)

        @meter.priced_tool(name="delegate")
        def delegate(task: str) -> str:
            with meter.span("inner", kind="agent"):
                self._call(self.INNER_USAGE)
                handle.flush()  # the inner call's span ends before the tool's
            return task

        with meter.trace("outer"):
            self._call(self.FIRST_USAGE)
            delegate("sub-task")
            self._call(self.SECOND_USAGE)
        assert handle.flush()

    def run_error_mid_run(self, meter: Meter) -> None:
        # LiteLLM maps every provider error to its own exception classes (a
        # provider raising ScenarioError reaches the caller as
        # litellm.APIConnectionError, with or without faremeter); the agent
        # step that sees the model fail raises the scenario's error.
        handle = faremeter_litellm.instrument(meter)
        try:
            with meter.trace("agent"):
                self._call(self.FIRST_USAGE)
                try:
                    litellm.completion(
                        model=self.MODEL,
                        messages=MESSAGES,
                        mock_response=Exception(self.ERROR_MESSAGE),
                    )
                except litellm.exceptions.InternalServerError as exc:
                    raise self.ScenarioError(self.ERROR_MESSAGE) from exc
        finally:
            handle.flush()

    async def arun_concurrent(self, meter: Meter, n: int) -> None:
        handle = faremeter_litellm.instrument(meter)
        lookup = meter.priced_tool(name="lookup")(lambda q: q)

        async def run(i: int) -> None:
            with meter.trace("agent", user_id=f"u{i}"):
                for usage in (self.FIRST_USAGE, self.SECOND_USAGE):
                    await litellm.acompletion(
                        model=self.MODEL, messages=MESSAGES, mock_response=mock(usage)
                    )
                    if usage is self.FIRST_USAGE:
                        lookup("x")

        await asyncio.gather(*(run(i) for i in range(n)))
        assert await handle.aflush()

    def run_streaming(self, meter: Meter) -> None:
        handle = faremeter_litellm.instrument(meter)
        stream = litellm.completion(
            model=self.MODEL,
            messages=MESSAGES,
            mock_response=mock(self.FIRST_USAGE),
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
        assert handle.flush()

    # LiteLLM is the layer closest to the provider: a custom provider runs
    # before any LiteLLM hook that could open its span, so nothing can be
    # nested inside a LiteLLM call (it is the inner layer of every wrapper).
    can_wrap_inner_calls = False

    def run_single_call(
        self, meter: Meter, model: str, usage: Usage | None, reply: str = "ok"
    ) -> None:
        handle = faremeter_litellm.instrument(meter)
        response = mock(usage or Usage(), model=model, text=reply)
        if usage is None:
            del response.usage  # the provider sent no usage block at all
        litellm.completion(
            model=model, messages=MESSAGES, mock_response=response, custom_llm_provider="openai"
        )
        assert handle.flush()

    async def arun_streaming(self, meter: Meter) -> None:
        handle = faremeter_litellm.instrument(meter)
        stream = await litellm.acompletion(
            model=self.MODEL,
            messages=MESSAGES,
            mock_response=mock(self.FIRST_USAGE),
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in stream:
            pass
        assert await handle.aflush()

    def run_cached_call(self, meter: Meter) -> None:
        pytest.importorskip("fastapi", reason="litellm's local cache path imports litellm.proxy")
        from litellm.caching.caching import Cache

        handle = faremeter_litellm.instrument(meter)
        litellm.cache = Cache(type="local")
        try:
            for _ in range(2):
                litellm.completion(
                    model=self.MODEL,
                    messages=MESSAGES,
                    mock_response=mock(self.FIRST_USAGE),
                    caching=True,
                )
        finally:
            litellm.cache = None
        assert handle.flush()

    def run_provider_error(self, meter: Meter, error: BaseException) -> None:
        # LiteLLM maps every provider error to its own classes (a 429 becomes
        # litellm.RateLimitError); the caller here re-raises the provider's.
        handle = faremeter_litellm.instrument(meter)
        try:
            litellm.completion(model=self.MODEL, messages=MESSAGES, mock_response=error)
        except litellm.exceptions.RateLimitError as exc:
            raise error from exc
        finally:
            handle.flush()

    def run_wrapping_call(self, meter: Meter, inner: Callable[[], None]) -> None:
        raise AssertionError("can_wrap_inner_calls is False")

    def open_calls(self, meter: Meter) -> int:
        handle = faremeter_litellm.instrument(meter)
        return handle.logger.recorder.calls.open_calls + handle.logger.recorder.pending()
