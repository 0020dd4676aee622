"""The LiteLLM ``CustomLogger`` subclass (imports LiteLLM; loaded lazily)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from faremeter.call_probes import add_call_probe
from faremeter.meter import Meter
from faremeter_litellm._call_scope import litellm_call_probe, mark_call_set_up
from faremeter_litellm._recorder import Recorder

__all__ = ["FaremeterLogger", "watch_setup"]

logger = logging.getLogger("faremeter.litellm")

_watchers: list[Recorder] = []
_original_setup: Any = None
_remove_probe: Callable[[], None] | None = None  # unregisters litellm_call_probe


def _setup(*args: Any, **kwargs: Any) -> Any:
    """``litellm.utils.function_setup``, then tell the recorders who the caller is.

    LiteLLM has no hook that runs in the caller's context for *every* call
    (``log_pre_api_call`` skips cache hits and custom providers, and a sync
    cache hit is logged from an executor with an empty context); its
    ``function_setup`` does run there, for every SDK call. It also marks the
    context as one LiteLLM calls run in, which arms the stack probe there.
    """
    mark_call_set_up()
    result: Any = _original_setup(*args, **kwargs)
    try:
        call_kwargs = _kw(result[1] if isinstance(result, tuple) else None)
        if call_kwargs:
            cid: Any = call_kwargs.get("litellm_call_id")
            expect = call_kwargs.get("stream") is not True
            for recorder in tuple(_watchers):
                recorder.setup(cid if isinstance(cid, str) else None, expect=expect)
    except Exception:  # never break the user's call
        logger.debug("faremeter: LiteLLM setup hook failed", exc_info=True)
    return result  # pyright: ignore[reportUnknownVariableType]


def watch_setup(recorder: Recorder, on: bool) -> None:
    """Start (or stop) telling ``recorder`` about every call LiteLLM sets up.

    While any recorder watches, faremeter's GenAI span processor is also told
    (through :mod:`faremeter.call_probes`) when a LiteLLM call is running, so
    the provider SDK's own OTel span inside it is not priced a second time.
    """
    global _original_setup, _remove_probe
    import litellm.utils

    recorder.watching = on
    if on:
        if recorder not in _watchers:
            _watchers.append(recorder)
        if _original_setup is None:
            _original_setup = litellm.utils.function_setup
            litellm.utils.function_setup = _setup  # type: ignore[assignment]
        if _remove_probe is None:
            _remove_probe = add_call_probe(litellm_call_probe)
    else:
        if recorder in _watchers:
            _watchers.remove(recorder)
        if not _watchers and _original_setup is not None:
            litellm.utils.function_setup = _original_setup
            _original_setup = None
        if not _watchers and _remove_probe is not None:
            _remove_probe()
            _remove_probe = None


def _kw(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # pyright: ignore[reportUnknownVariableType]


class FaremeterLogger(CustomLogger):
    """Prices and attributes every LiteLLM call with faremeter's catalog.

    Register it like any LiteLLM callback (``litellm.callbacks = [logger]``)
    or use :func:`faremeter_litellm.instrument`. Sync calls fire the sync
    hooks, async calls only the async ones; both end the same span, and a call
    is recorded once even when LiteLLM fires both.

    Every hook swallows (and logs) its own failures: LiteLLM already hides
    callback exceptions, but a faremeter bug must not even cost a traceback
    in the app's logs per call.

    Args:
        meter: Where to record; the process default meter when ``None``.
        stream_usage: In a LiteLLM proxy, add ``stream_options.include_usage``
            to streamed requests that set no ``stream_options`` (clients then
            also receive the final usage chunk).
        **attributes: Attribution stamped on every span (``environment="prod"``).
    """

    def __init__(
        self, meter: Meter | None = None, *, stream_usage: bool = True, **attributes: Any
    ) -> None:
        super().__init__()  # pyright: ignore[reportUnknownMemberType]
        self.recorder = Recorder(meter, attributes)
        self.stream_usage = stream_usage
        # LiteLLM de-duplicates loggers by class name plus public scalar attributes;
        # an id per instance keeps two loggers with different meters both active.
        self.faremeter_logger_id = id(self)

    # -- sync ----------------------------------------------------------------------
    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        """Start the span in the caller's context (runs inline, before the request)."""
        try:
            self.recorder.start(_kw(kwargs))
        except Exception:
            logger.exception("faremeter: LiteLLM pre-call hook failed")

    def log_post_api_call(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """The provider answered: the call's span stops being the caller's current span."""
        try:
            self.recorder.request_done(_kw(kwargs))
        except Exception:
            logger.exception("faremeter: LiteLLM post-call hook failed")

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """End the span of a sync call (a stream: once, with the assembled response)."""
        self._success(kwargs, response_obj, start_time, end_time)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """End the span of a failed sync call as ``error``."""
        self._failure(kwargs, response_obj, start_time, end_time)

    def _success(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        try:
            self.recorder.success(_kw(kwargs), response_obj, start_time, end_time)
        except Exception:
            logger.exception("faremeter: LiteLLM success hook failed")

    def _failure(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        try:
            self.recorder.failure(_kw(kwargs), response_obj, start_time, end_time)
        except Exception:
            logger.exception("faremeter: LiteLLM failure hook failed")

    # -- async ---------------------------------------------------------------------
    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """End the span of an async call (no I/O here: the ledger write is queued)."""
        self._success(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """End the span of a failed async call as ``error``."""
        self._failure(kwargs, response_obj, start_time, end_time)

    # -- proxy ---------------------------------------------------------------------
    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: Any, call_type: Any
    ) -> Any:
        """Enforce budgets and ask for usage on streams, before the proxy routes a request.

        Proxy-only: the SDK has no hook that runs before the request is built.
        A request over a ``deny`` budget is refused here with HTTP 429 naming
        the budget, before anything reaches a provider; an admitted request's
        reservation is adopted by its priced call and settled to its real cost.
        """
        try:
            if (
                self.stream_usage
                and isinstance(data, dict)
                and data.get("stream") is True  # pyright: ignore[reportUnknownMemberType]
                and "stream_options" not in data
            ):
                data["stream_options"] = {"include_usage": True}
        except Exception:
            logger.exception("faremeter: LiteLLM proxy pre-call hook failed")
        if isinstance(data, dict):
            await self._admit(_kw(data))
        return data  # pyright: ignore[reportUnknownVariableType]

    async def _admit(self, data: Mapping[str, Any]) -> None:
        from faremeter.errors import BudgetExceeded

        meter = self.recorder.meter
        manager: Any = meter.budgets
        if manager is None:
            return
        try:
            from faremeter.budgets.estimate import estimate_call_cost
            from faremeter.routing.admission import offer
            from faremeter_litellm import _translate as tr

            model = data.get("model")
            metadata = _kw(data.get("metadata")) or _kw(data.get("litellm_metadata"))
            attributes = tr.attribution(
                {"litellm_params": {"metadata": metadata}, "user": data.get("user")}
            )
            max_tokens = data.get("max_tokens") or data.get("max_completion_tokens")
            amount = (
                estimate_call_cost(
                    meter.catalog,
                    model,
                    tr.prompt_texts(data.get("messages")),
                    max_tokens if type(max_tokens) is int else None,
                )
                if isinstance(model, str) and model
                else None
            )
            reservation = await manager.areserve(
                attributes=attributes, trace_id=None, amount=amount, kind="llm", name=model
            )
        except BudgetExceeded as exc:
            from fastapi import HTTPException

            raise HTTPException(
                status_code=429,
                detail={
                    "error": str(exc),
                    "type": "budget_exceeded",
                    "budget": exc.budget,
                    "limit": None if exc.limit is None else str(exc.limit),
                    "spent": None if exc.spent is None else str(exc.spent),
                    "reserved": None if exc.reserved is None else str(exc.reserved),
                    "attempted": None if exc.attempted is None else str(exc.attempted),
                },
            ) from None
        except Exception:
            logger.exception("faremeter: LiteLLM proxy budget check failed")
            return
        offer(reservation)
