"""Where trace and span ids come from.

Random W3C-format ids by default; tests inject :class:`faremeter.testing.SequentialIds`
and exporters may inject ids that join an enclosing OpenTelemetry trace.
"""

from __future__ import annotations

from typing import Protocol

from faremeter.spans import new_span_id, new_trace_id

__all__ = ["IdGenerator", "RandomIds"]


class IdGenerator(Protocol):
    """Where trace and span ids come from (deterministic in tests)."""

    def trace_id(self) -> str:
        """A new 32-hex-digit trace id."""
        ...

    def span_id(self) -> str:
        """A new 16-hex-digit span id."""
        ...


class RandomIds:
    """Random 128-bit trace ids and 64-bit span ids (W3C / OpenTelemetry format)."""

    __slots__ = ()

    def trace_id(self) -> str:
        """A new random trace id."""
        return new_trace_id()

    def span_id(self) -> str:
        """A new random span id."""
        return new_span_id()
