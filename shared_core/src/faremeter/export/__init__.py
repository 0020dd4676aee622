"""Exports of faremeter's numbers into the tools teams already run.

- :mod:`faremeter.export.otel` — every span as an OpenTelemetry span with the
  GenAI semantic conventions (``faremeter[otel]``).
- :mod:`faremeter.export.otel_processor` — an OTel ``SpanProcessor`` that
  prices GenAI spans other instrumentations make and records them in the
  ledger (``faremeter[otel]``).
- :mod:`faremeter.export.prometheus` — spend, tokens, cache, budget and
  routing metrics (``faremeter[prometheus]``).

Nothing is imported here: each submodule pulls in its optional dependency
only when used.
"""

from __future__ import annotations

__all__: list[str] = []
