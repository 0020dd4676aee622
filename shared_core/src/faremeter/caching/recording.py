"""How cache hits and misses become spans — one rule for every way a cache is used.

A call can be seen by several layers: a framework's callback handler (LangChain
opens a ``tool`` span before the tool body runs), ``@meter.priced_tool``, or
nobody. The rule that keeps the ledger at one span per call:

* **Hit** — nothing else can record it (the tool body never runs), so the
  cache does. If the current span is an open ``tool`` span with the same name
  (the framework's or a decorator's span *for this very call*), the cache
  *claims* it: ends it as ``cached`` with cost 0 and ``saved``; the owner's
  later ``end()`` is a no-op (``OpenSpan.end`` is idempotent). Otherwise it
  records a new ``cached`` span under the current span.
* **Miss** — the call runs and is recorded once, by whoever would record it
  without the cache: the enclosing same-named span if there is one (the cache
  only tags it ``cache=miss``), a wrapped ``@meter.priced_tool`` when the cache
  was told so (``records_miss=False``), else the cache itself (a priced
  ``tool`` span, as ``priced_tool`` would record it).

Spans carry ``cache`` (``hit``/``miss``) and ``cache_key`` (the key's digest,
never its content) so reports can compute hit rates and spot keys that were
missed again after their entry expired.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from faremeter.context import current_span
from faremeter.cost import Cost
from faremeter.open_span import OpenSpan
from faremeter.spans import SpanKind, SpanStatus

if TYPE_CHECKING:
    from faremeter.meter import Meter

__all__ = ["claimable_span", "key_digest", "record_hit", "tag_miss"]

logger = logging.getLogger("faremeter.caching")

_FREE = Cost()


def tag_miss(span: OpenSpan, key: str) -> None:
    """Mark ``span`` as a cache miss of ``key`` (for hit rates and repeated keys)."""
    span.attributes.update(cache="miss", cache_key=key_digest(key))


def key_digest(key: str) -> str:
    """The digest part of a cache key (what spans carry as ``cache_key``)."""
    return key.rsplit(":", 1)[-1]


def claimable_span(name: str, kind: SpanKind = SpanKind.TOOL) -> OpenSpan | None:
    """The open span another layer started for this very call, if any."""
    span = current_span()
    if span is not None and span.kind is kind and span.name == name and not span.ended:
        return span
    return None


def record_hit(
    meter: Meter,
    name: str,
    key: str,
    saved: Decimal | None,
    *,
    kind: SpanKind = SpanKind.TOOL,
    model: str | None = None,
    error: str | None = None,
    claim: bool = True,
) -> None:
    """Record one hit as a ``cached`` span (claiming the caller's span if open).

    Never raises: a recording fault is faremeter's, not the application's.
    """
    try:
        span = claimable_span(name, kind) if claim else None
        if span is None:
            span = meter.start_span(name, kind=kind, model=model)
        # Known-safe names and str values: set directly, past per-call validation.
        span.attributes.update(cache="hit", cache_key=key_digest(key))
        span.end(status=SpanStatus.CACHED, cost=_FREE, saved=saved, model=model, error=error)
    except Exception:
        logger.exception("faremeter cache: recording the hit of %r failed", name)
