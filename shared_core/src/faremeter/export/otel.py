"""Every faremeter span as an OpenTelemetry span (GenAI semantic conventions).

One line sends faremeter's priced spans into a team's existing OTel pipeline::

    from faremeter.export import otel
    otel.instrument(meter)                      # the global TracerProvider
    otel.instrument(meter, tracer_provider=tp)  # or a given one

A faremeter span is exported once, when it ends, by a span listener on the
meter. Children end before their parents, so each OTel span is built with
faremeter's own ids (already W3C format), explicit start and end times and an
explicit parent ``SpanContext``: the OTel trace has exactly faremeter's tree,
under whatever application span the run was opened in.

Cost: ``gen_ai.usage.cost.amount`` and ``faremeter.cost.direct`` hold the
span's *own* cost, so summing either over a trace gives the trace's cost with
no retried or routed call counted twice. ``faremeter.cost.inclusive`` is the
span plus its descendants; it is computed when the span ends, from the
children that ended before it (children normally end first; one that ends
after its parent — a detached task — is in the trace total, not in that
parent's inclusive figure).

Requires ``faremeter[otel]`` (opentelemetry-api and opentelemetry-sdk).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from faremeter.export.semconv import (
    ATTRIBUTE_PREFIX,
    ERROR_TYPE,
    FM_COST_DIRECT,
    FM_COST_INCLUSIVE,
    FM_COST_SAVED,
    FM_COST_UNPRICED_REASON,
    FM_INCLUSIVE_UNPRICED,
    FM_KIND,
    FM_PRICE_VERSION,
    FM_SOURCE,
    FM_STATUS,
    FM_TAGS,
    FM_USAGE_SOURCE,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_COST_AMOUNT,
    GEN_AI_USAGE_COST_CURRENCY,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    OPERATION_BY_KIND,
    RESPONSE_MODEL_ATTRIBUTE,
    SESSION_ID,
    SOURCE_OTEL,
    USER_ID,
)
from faremeter.spans import SpanKind, SpanRecord, SpanStatus

try:
    from cachetools import LRUCache
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from opentelemetry.sdk.trace.id_generator import IdGenerator as OtelIdGenerator
    from opentelemetry.trace import (
        NonRecordingSpan,
        SpanContext,
        Status,
        StatusCode,
        TraceFlags,
    )
    from opentelemetry.trace import SpanKind as OtelSpanKind
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "faremeter's OpenTelemetry export needs the otel extra: pip install 'faremeter[otel]'"
    ) from exc

from faremeter.cost import CURRENCY
from faremeter.export.otel_ids import OtelTraceIds, on_activate, on_deactivate, span_context_of

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from faremeter.meter import Meter

__all__ = ["OtelExporter", "instrument", "record_attributes", "uninstrument"]

logger = logging.getLogger("faremeter")

_SCOPE = "faremeter"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_CLIENT_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})
_ERROR_STATUSES = frozenset({SpanStatus.ERROR, SpanStatus.DENIED})
_ZERO = Decimal(0)


class _ExplicitIds(OtelIdGenerator):
    """Hands the SDK tracer the ids faremeter already chose for the span being exported.

    Installed only on faremeter's own tracer (its instrumentation scope is
    faremeter's), so application spans keep the provider's generator.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, trace_id: int, span_id: int) -> None:
        self._local.ids = (trace_id, span_id)

    def generate_trace_id(self) -> int:
        return self._local.ids[0]

    def generate_span_id(self) -> int:
        return self._local.ids[1]

    def is_trace_id_random(self) -> bool:
        return True  # faremeter's default ids are 128 random bits


_EXPLICIT_IDS = _ExplicitIds()
"""One for the process: every exporter on a provider shares faremeter's (cached) tracer."""


def _money(value: Decimal) -> float:
    # OTel attributes have no decimal type; a double holds USD amounts to
    # ~15 significant digits, far below a micro-cent.
    return float(value)


def record_attributes(
    record: SpanRecord, inclusive: Decimal | None = None, inclusive_unpriced: int = 0
) -> dict[str, Any]:
    """The OTel attributes of one finished faremeter span.

    GenAI conventions for what they cover (operation, provider, models, token
    counts, proposed cost), ``faremeter.*`` for the rest: kind, status, direct
    and inclusive cost, price version, attribution (``faremeter.<key>``), and
    route / budget decisions stamped on the span.
    """
    kind = record.kind
    attrs: dict[str, Any] = {FM_KIND: kind.value, FM_STATUS: record.status.value}
    operation = OPERATION_BY_KIND.get(kind)
    if operation is not None:
        attrs[GEN_AI_OPERATION_NAME] = operation
    if kind is SpanKind.TOOL:
        attrs[GEN_AI_TOOL_NAME] = record.name
    elif kind is SpanKind.AGENT:
        attrs[GEN_AI_AGENT_NAME] = record.name
    if record.provider:
        attrs[GEN_AI_PROVIDER_NAME] = record.provider
    if record.model:
        attrs[GEN_AI_REQUEST_MODEL] = record.model
        response_model = record.attributes.get(RESPONSE_MODEL_ATTRIBUTE)
        attrs[GEN_AI_RESPONSE_MODEL] = (
            response_model if isinstance(response_model, str) else record.model
        )
    usage = record.usage
    if usage is not None:
        attrs[GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
        attrs[GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
        if usage.cache_read_tokens:
            attrs[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attrs[GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
        if usage.reasoning_tokens:
            attrs[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        attrs[FM_USAGE_SOURCE] = usage.source
    cost = record.cost
    direct = cost.total
    if direct is None:
        attrs[FM_COST_UNPRICED_REASON] = cost.unpriced_reason or "unpriced"
    else:
        amount = _money(direct)
        attrs[GEN_AI_USAGE_COST_AMOUNT] = amount
        attrs[GEN_AI_USAGE_COST_CURRENCY] = CURRENCY
        attrs[FM_COST_DIRECT] = amount
    if inclusive is not None:
        attrs[FM_COST_INCLUSIVE] = _money(inclusive)
        if inclusive_unpriced:
            attrs[FM_INCLUSIVE_UNPRICED] = inclusive_unpriced
    if record.saved is not None:
        attrs[FM_COST_SAVED] = _money(record.saved)
    if record.price_version:
        attrs[FM_PRICE_VERSION] = record.price_version
    if record.tags:
        attrs[FM_TAGS] = list(record.tags)
    if record.status in _ERROR_STATUSES:
        error_type = record.error_class or (record.error or "").split(":", 1)[0]
        if error_type:
            attrs[ERROR_TYPE] = error_type
    for key, value in record.attributes.items():
        attrs[ATTRIBUTE_PREFIX + key] = value
    user_id = record.attributes.get("user_id")
    if user_id is not None:
        attrs[USER_ID] = user_id
    session_id = record.attributes.get("session_id")
    if session_id is not None:
        attrs[SESSION_ID] = session_id
    return attrs


def _span_name(record: SpanRecord) -> str:
    operation = OPERATION_BY_KIND.get(record.kind)
    if operation is None:
        return record.name
    if record.kind in _CLIENT_KINDS:
        return f"{operation} {record.model}" if record.model else record.name
    return f"{operation} {record.name}"


class OtelExporter:
    """The span listener that turns faremeter records into OTel spans.

    Use :func:`instrument`; construct directly only to wire it by hand
    (``meter.add_span_listener(exporter)``).

    Args:
        tracer_provider: An ``opentelemetry.sdk.trace.TracerProvider``;
            defaults to the global provider, resolved at the first export so
            it may be set after instrumenting.
        ids: The meter's joining id generator, when the meter joins OTel
            traces (gives roots their OTel parent).
        max_open: Bound on remembered per-span state (partial inclusive
            totals, per-trace sampling decisions).
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        ids: OtelTraceIds | None = None,
        max_open: int = 100_000,
    ) -> None:
        self._provider = tracer_provider
        self._ids = ids
        self._tracer: SdkTracer | None = None
        self._lock = threading.Lock()
        # (trace_id, span_id) -> [priced total, unpriced count] of finished children
        self._children: LRUCache[tuple[str, str], list[Any]] = LRUCache(maxsize=max_open)
        self._sampled: LRUCache[str, TraceFlags] = LRUCache(maxsize=max_open)
        self._warned = False

    # -- plumbing -------------------------------------------------------------
    def _resolve_tracer(self) -> SdkTracer | None:
        provider = self._provider or otel_trace.get_tracer_provider()
        from faremeter import __version__

        tracer = provider.get_tracer(_SCOPE, __version__)
        if not isinstance(tracer, SdkTracer):
            if not self._warned:
                self._warned = True
                logger.warning(
                    "faremeter: OTel export needs an opentelemetry-sdk TracerProvider "
                    "(got %s); set one with trace.set_tracer_provider(...) or pass "
                    "tracer_provider= to faremeter.export.otel.instrument()",
                    type(provider).__name__,
                )
            return None
        # Only faremeter's own tracer (its own instrumentation scope) gets the
        # explicit ids; every other tracer keeps the provider's generator.
        tracer.id_generator = _EXPLICIT_IDS
        self._tracer = tracer
        return tracer

    def _inclusive(self, record: SpanRecord, direct: Decimal | None) -> tuple[Decimal, int]:
        key = (record.trace_id, record.span_id)
        with self._lock:
            children = self._children.pop(key, None)
            total: Decimal = children[0] if children else _ZERO
            unpriced: int = children[1] if children else 0
            if direct is None:
                unpriced += 1
            else:
                total += direct
            if record.parent_span_id is not None:
                parent_key = (record.trace_id, record.parent_span_id)
                acc = self._children.get(parent_key)
                if acc is None:
                    self._children[parent_key] = [total, unpriced]
                else:
                    acc[0] += total
                    acc[1] += unpriced
        return total, unpriced

    def _trace_flags(self, tracer: SdkTracer, record: SpanRecord, trace_id: int) -> TraceFlags:
        """One sampling decision per trace, made the way a root span's would be."""
        with self._lock:
            flags = self._sampled.get(record.trace_id)
        if flags is not None:
            return flags
        joined = self._ids.joined_flags(record.trace_id) if self._ids is not None else None
        if joined is not None:
            flags = TraceFlags(joined & TraceFlags.SAMPLED)
        else:
            result = tracer.sampler.should_sample(otel_context.Context(), trace_id, record.name)
            flags = _SAMPLED if result.decision.is_sampled() else _NOT_SAMPLED
        with self._lock:
            self._sampled[record.trace_id] = flags
        return flags

    # -- the listener ---------------------------------------------------------
    def __call__(self, record: SpanRecord) -> None:
        """Export one finished span (called by the meter for every span)."""
        direct = record.cost.total
        inclusive, unpriced = self._inclusive(record, direct)
        if record.attributes.get(FM_SOURCE) == SOURCE_OTEL:
            # Recorded from an OTel span: it is already in the OTel trace.
            if record.parent_span_id is None and self._ids is not None:
                self._ids.pop_root_parent(record.span_id)
            return
        tracer = self._tracer or self._resolve_tracer()
        if tracer is None:
            return
        trace_id = int(record.trace_id, 16)
        flags = self._trace_flags(tracer, record, trace_id)
        if record.parent_span_id is not None:
            parent: SpanContext | None = span_context_of(
                record.trace_id, record.parent_span_id, flags
            )
        else:
            parent = self._ids.pop_root_parent(record.span_id) if self._ids is not None else None
            with self._lock:
                self._sampled.pop(record.trace_id, None)  # the root ends last
        context = otel_context.Context()  # never the ambient context of whoever ended the span
        if parent is not None:
            context = otel_trace.set_span_in_context(NonRecordingSpan(parent), context)
        _EXPLICIT_IDS.set(trace_id, int(record.span_id, 16))
        span = tracer.start_span(
            _span_name(record),
            context=context,
            kind=OtelSpanKind.CLIENT if record.kind in _CLIENT_KINDS else OtelSpanKind.INTERNAL,
            attributes=record_attributes(record, inclusive, unpriced),
            start_time=record.start_ns,
        )
        if record.status in _ERROR_STATUSES:
            span.set_status(Status(StatusCode.ERROR, record.error))
        span.end(end_time=record.end_ns)


_installed: weakref.WeakKeyDictionary[Meter, Callable[[], None]] = weakref.WeakKeyDictionary()
_install_lock = threading.Lock()


def instrument(
    meter: Meter,
    *,
    tracer_provider: TracerProvider | None = None,
    join_traces: bool = True,
) -> OtelExporter:
    """Export every span ``meter`` finishes to OpenTelemetry; idempotent.

    Calling it again replaces the previous export of that meter (e.g. with
    another provider) instead of exporting twice.

    Args:
        meter: The meter whose spans to export.
        tracer_provider: The SDK provider to export through (default: global).
        join_traces: Make a faremeter trace opened inside an OTel span part
            of that trace (replaces ``meter.ids`` with a wrapper around it),
            and, where the core offers a span-activation hook, make open
            faremeter spans the current OTel span so other instrumentations'
            spans nest under them.

    Returns:
        The exporter (already listening).
    """
    with _install_lock:
        previous = _installed.pop(meter, None)
        if previous is not None:
            previous()
        ids: OtelTraceIds | None = None
        original_ids = meter.ids
        if join_traces:
            ids = OtelTraceIds(original_ids)
            meter.ids = ids
        exporter = OtelExporter(tracer_provider=tracer_provider, ids=ids)
        remove_listener = meter.add_span_listener(exporter)
        remove_hook = _add_activation_hook() if join_traces else None

        def undo() -> None:
            remove_listener()
            if remove_hook is not None:
                remove_hook()
            if meter.ids is ids:
                meter.ids = original_ids

        _installed[meter] = undo
        return exporter


def uninstrument(meter: Meter) -> bool:
    """Stop exporting ``meter``'s spans; True if it was instrumented."""
    with _install_lock:
        undo = _installed.pop(meter, None)
    if undo is None:
        return False
    undo()
    return True


def _add_activation_hook() -> Callable[[], None] | None:
    """Register the OTel bridge with the core's span-activation hook, if the core has one.

    The core calls ``on_activate(span)`` whenever it makes a span current and
    ``on_deactivate()`` when it undoes that (see ``faremeter.context``).
    """
    from faremeter import context

    add_hook: Callable[..., Callable[[], None]] | None = getattr(
        context, "add_activation_hook", None
    )
    if add_hook is None:
        return None
    return add_hook(on_activate, on_deactivate)
