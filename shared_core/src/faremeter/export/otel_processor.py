"""Price the GenAI spans other OpenTelemetry instrumentations make.

A team that already traces model calls with OpenLLMetry, OpenInference or the
``opentelemetry-instrumentation-openai*`` packages adds one line and gets
faremeter's exact prices, ledger, reports and budgets' view of spend::

    from faremeter.export import otel_processor
    otel_processor.instrument(meter)   # on the global TracerProvider

:class:`GenAISpanProcessor` watches spans end; one that reports token counts
(``gen_ai.usage.*``, the older ``prompt_tokens``/``completion_tokens``
spelling, or OpenInference's ``llm.token_count.*``) is priced with the
meter's catalog and recorded as a faremeter LLM (or embedding) span.

Attribution comes from, in increasing precedence: the faremeter attribution
in force where the span *started* (``faremeter.attributes(...)``, an
enclosing ``meter.trace``), OTel baggage entries named like attribution keys
(``user_id``, ``team``, ...), OpenLLMetry association properties
(``traceloop.association.properties.<key>``) and ``user.id`` / ``session.id``.

Exactly once — a GenAI span is skipped when a faremeter adapter already
records the same provider request:

1. it started inside a model call a faremeter adapter records: that call
   was the current span of its context (an adapter's call whose framework
   calls a provider SDK that OpenLLMetry traces), or an adapter that cannot
   make its call current for exactly the request's duration says through
   :mod:`faremeter.call_probes` that its call is running there (LiteLLM: a
   frame of LiteLLM's call wrapper is on the stack);
2. it carries a correlation id (``litellm.call_id`` by default, see
   :meth:`GenAISpanProcessor.correlate`) that a faremeter span recorded
   recently carries too, or that an adapter reports as an open call (a
   callback-based integration such as LiteLLM's own OTel logger emits its
   span outside the call's context, so rule 1 cannot see it);
3. faremeter exported it itself.

Only calls with token counts are recorded (a request that failed before usage
was reported is not billed).

Requires ``faremeter[otel]``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    from cachetools import LRUCache
    from opentelemetry import baggage as otel_baggage
    from opentelemetry import trace as otel_trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "faremeter's OpenTelemetry span processor needs the otel extra: "
        "pip install 'faremeter[otel]'"
    ) from exc

from faremeter.call_probes import inside_adapter_call
from faremeter.context import current_attributes, current_span
from faremeter.export.otel_ids import FaremeterOtelSpan
from faremeter.export.semconv import (
    FM_KIND,
    FM_SOURCE,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM,
    SESSION_ID,
    SOURCE_OTEL,
    USER_ID,
)
from faremeter.spans import ATTRIBUTION_KEYS, AttributeValue, SpanKind, SpanRecord, SpanStatus
from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.meter import Meter
    from faremeter.open_span import OpenSpan

__all__ = ["GenAISpanProcessor", "instrument", "uninstrument", "usage_from_attributes"]

logger = logging.getLogger("faremeter")

_RECORDED_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})
_TRACELOOP_PROPERTIES = "traceloop.association.properties."
_FAREMETER_SCOPE = "faremeter"  # the instrumentation scope of faremeter's own exported spans

# Each field: the attribute spellings seen in the wild, preferred first.
_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
_OUTPUT = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
_CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
_MODEL = (GEN_AI_RESPONSE_MODEL, GEN_AI_REQUEST_MODEL, "llm.model_name")
_PROVIDER = (GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM, "llm.provider", "llm.system")


def _first(attrs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None:
            return value
    return None


def _count(attrs: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    value = _first(attrs, names)
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def usage_from_attributes(attrs: Mapping[str, Any]) -> Usage | None:
    """Token counts from a GenAI span's attributes; ``None`` when it reports none.

    The GenAI conventions count cache reads and writes inside input tokens
    (faremeter's convention too). An instrumentation that reports them
    outside (cache tokens exceeding input tokens) is normalised.

    Raises:
        faremeter.InvalidUsageError: For negative or absurd counts.
    """
    input_tokens = _count(attrs, _INPUT)
    output_tokens = _count(attrs, _OUTPUT)
    if input_tokens is None and output_tokens is None:
        return None
    cache_read = _count(attrs, _CACHE_READ) or 0
    cache_write = _count(attrs, _CACHE_WRITE) or 0
    reasoning = _count(attrs, _REASONING) or 0
    input_tokens = input_tokens or 0
    output_tokens = output_tokens or 0
    if cache_read + cache_write > input_tokens:
        input_tokens += cache_read + cache_write
    return Usage(
        input_tokens=input_tokens,
        output_tokens=max(output_tokens, reasoning),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def _is_faremeters(span: Span) -> bool:
    """A span faremeter's own exporter made (never a duplicate of an adapter's call)."""
    scope = span.instrumentation_scope
    return scope is not None and scope.name == _FAREMETER_SCOPE


@dataclass(frozen=True, kw_only=True, slots=True)
class _Started:
    """What was in force where a span started (read back when it ends)."""

    parent: OpenSpan | None
    attributes: Mapping[str, AttributeValue]
    inside_model_call: bool


class GenAISpanProcessor(SpanProcessor):
    """Records third-party GenAI spans in a faremeter ledger, priced by its catalog.

    Args:
        meter: Where to record; defaults to the process-wide meter
            (``faremeter.get_meter()``), resolved per span.
        attribution_keys: Baggage / association-property names copied as
            attribution.
        max_open: Bound on spans started and not yet ended that are remembered.
    """

    def __init__(
        self,
        meter: Meter | None = None,
        *,
        attribution_keys: tuple[str, ...] = ATTRIBUTION_KEYS,
        max_open: int = 10_000,
    ) -> None:
        self.meter = meter
        self.enabled = True
        self.attribution_keys = attribution_keys
        self._started: LRUCache[int, _Started] = LRUCache(maxsize=max_open)
        self._lock = threading.Lock()
        self._correlations: dict[str, str] = {}
        self._recent: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=max_open)
        self._open_checks: dict[str, list[Callable[[str], bool]]] = {}
        self._watched: weakref.WeakSet[Meter] = weakref.WeakSet()
        self.recorded = 0
        self.skipped_duplicates = 0
        self.correlate("litellm.call_id", "litellm_call_id")
        if meter is not None:
            self.watch(meter)

    # -- correlation ----------------------------------------------------------
    def correlate(
        self,
        otel_attribute: str,
        faremeter_attribute: str,
        *,
        is_open: Callable[[str], bool] | None = None,
    ) -> None:
        """Treat a GenAI span as already recorded when its ``otel_attribute`` matches.

        Args:
            otel_attribute: The id on the third-party span (``litellm.call_id``).
            faremeter_attribute: The same id on the adapter's faremeter span
                (``litellm_call_id``); recently recorded values are remembered.
            is_open: Tells whether the adapter holds an open (not yet
                recorded) call with that id, for integrations whose span ends
                before the adapter's.
        """
        with self._lock:
            self._correlations[otel_attribute] = faremeter_attribute
            if is_open is not None:
                self._open_checks.setdefault(otel_attribute, []).append(is_open)

    def watch(self, meter: Meter) -> None:
        """Remember correlation ids of spans ``meter``'s adapters record."""
        if meter in self._watched:
            return
        self._watched.add(meter)
        meter.add_span_listener(self._remember)

    def _remember(self, record: SpanRecord) -> None:
        if record.kind not in _RECORDED_KINDS or record.attributes.get(FM_SOURCE) == SOURCE_OTEL:
            return
        for fm_attribute in self._correlations.values():
            value = record.attributes.get(fm_attribute)
            if value is not None:
                with self._lock:
                    self._recent[(fm_attribute, str(value))] = True

    def _already_recorded(self, attrs: Mapping[str, Any]) -> bool:
        for otel_attribute, fm_attribute in self._correlations.items():
            value = attrs.get(otel_attribute)
            if value is None:
                continue
            with self._lock:
                if (fm_attribute, str(value)) in self._recent:
                    return True
                checks = list(self._open_checks.get(otel_attribute, ()))
            if any(check(str(value)) for check in checks):
                return True
        return False

    # -- SpanProcessor --------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Remember the faremeter span and attribution in force where ``span`` starts."""
        if not self.enabled:
            return
        try:
            parent = current_span()
            otel_parent = otel_trace.get_current_span(parent_context)
            inside = (
                (parent is not None and parent.kind in _RECORDED_KINDS)
                or (
                    isinstance(otel_parent, FaremeterOtelSpan)
                    and otel_parent.faremeter_kind in _RECORDED_KINDS
                )
                or (not _is_faremeters(span) and inside_adapter_call())
            )
            attrs: dict[str, AttributeValue] = dict(current_attributes())
            entries = otel_baggage.get_all(parent_context)
            if entries:
                for key in self.attribution_keys:
                    value = entries.get(key)
                    if isinstance(value, str | int | float | bool):
                        attrs[key] = value
            if parent is None and not attrs and not inside:
                return  # nothing to remember: the common case costs one lookup
            context = span.get_span_context()
            with self._lock:
                self._started[context.span_id] = _Started(
                    parent=parent, attributes=attrs, inside_model_call=inside
                )
        except Exception:  # never break the host app's tracing
            logger.exception("faremeter: GenAI span processor failed at span start")

    def on_end(self, span: ReadableSpan) -> None:
        """Price and record ``span`` if it is a GenAI call with token counts."""
        context = span.context
        if context is None:
            return
        with self._lock:
            started = self._started.pop(context.span_id, None)
        if not self.enabled:
            return
        try:
            self._record(span, started)
        except Exception:
            logger.exception("faremeter: pricing OTel span %r failed", span.name)

    def shutdown(self) -> None:
        """Stop recording (the provider is shutting down)."""
        self.enabled = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the meter's ledger."""
        meter = self.meter
        if meter is None:
            return True
        return meter.flush(timeout_millis / 1000)

    # -- recording ------------------------------------------------------------
    def _record(self, span: ReadableSpan, started: _Started | None) -> None:
        # One copy: lookups on the SDK's read-only proxy go through slow ABC methods.
        attrs: dict[str, Any] = dict(span.attributes or {})
        if FM_KIND in attrs:
            return  # faremeter's own export of a span it already recorded
        usage = usage_from_attributes(attrs)
        if usage is None:
            return
        meter = self.meter
        if meter is None:
            from faremeter import get_meter

            meter = get_meter()
        self.watch(meter)
        if (started is not None and started.inside_model_call) or self._already_recorded(attrs):
            with self._lock:
                self.skipped_duplicates += 1
            return
        model = _first(attrs, _MODEL)
        provider = _first(attrs, _PROVIDER)
        operation = attrs.get(GEN_AI_OPERATION_NAME)
        kind = SpanKind.EMBEDDING if operation == "embeddings" else SpanKind.LLM
        attribution: dict[str, Any] = dict(started.attributes) if started else {}
        for key in self.attribution_keys:
            value = attrs.get(_TRACELOOP_PROPERTIES + key)
            if value is not None:
                attribution[key] = value
        if attrs.get(USER_ID) is not None:
            attribution["user_id"] = attrs[USER_ID]
        if attrs.get(SESSION_ID) is not None:
            attribution["session_id"] = attrs[SESSION_ID]
        context = span.context
        assert context is not None
        attribution[FM_SOURCE] = SOURCE_OTEL
        attribution["otel.trace_id"] = f"{context.trace_id:032x}"
        attribution["otel.span_id"] = f"{context.span_id:016x}"
        if model is not None and attrs.get(GEN_AI_REQUEST_MODEL) not in (None, model):
            attribution["response_model"] = str(model)
        parent = started.parent if started is not None else None
        if parent is not None and parent.ended:
            parent = None
        fm_span = meter.start_span(
            span.name,
            kind=kind,
            parent=parent,
            attributes=attribution,
            model=None if model is None else str(model),
            provider=None if provider is None else str(provider),
            start_ns=span.start_time,
        )
        failed = span.status.status_code is StatusCode.ERROR
        fm_span.end(
            status=SpanStatus.ERROR if failed else SpanStatus.OK,
            usage=usage,
            error=span.status.description if failed else None,
            end_ns=span.end_time,
        )
        with self._lock:
            self.recorded += 1


_installed: weakref.WeakKeyDictionary[SdkTracerProvider, GenAISpanProcessor] = (
    weakref.WeakKeyDictionary()
)
_install_lock = threading.Lock()


def instrument(
    meter: Meter | None = None, *, tracer_provider: SdkTracerProvider | None = None
) -> GenAISpanProcessor:
    """Price and record other instrumentations' GenAI spans; idempotent per provider.

    Args:
        meter: Where to record (default: the process-wide meter).
        tracer_provider: The SDK provider the instrumentations report to
            (default: the global one).

    Raises:
        TypeError: If the provider is not an ``opentelemetry-sdk`` one (the
            API's no-op provider creates no spans to price).
    """
    provider = tracer_provider or otel_trace.get_tracer_provider()
    if not isinstance(provider, SdkTracerProvider):
        raise TypeError(
            "faremeter's GenAI span processor needs an opentelemetry-sdk TracerProvider "
            f"(got {type(provider).__name__}); call trace.set_tracer_provider(TracerProvider()) "
            "first or pass tracer_provider="
        )
    with _install_lock:
        processor = _installed.get(provider)
        if processor is None:
            processor = GenAISpanProcessor(meter)
            provider.add_span_processor(processor)
            _installed[provider] = processor
        processor.meter = meter
        if meter is not None:
            processor.watch(meter)
        processor.enabled = True
        return processor


def uninstrument(tracer_provider: SdkTracerProvider | None = None) -> bool:
    """Stop recording GenAI spans from ``tracer_provider``; True if it was instrumented.

    The SDK cannot remove a span processor, so the processor stays registered
    and does nothing until :func:`instrument` enables it again.
    """
    provider = tracer_provider or otel_trace.get_tracer_provider()
    if not isinstance(provider, SdkTracerProvider):
        return False
    with _install_lock:
        processor = _installed.get(provider)
    if processor is None or not processor.enabled:
        return False
    processor.enabled = False
    return True
