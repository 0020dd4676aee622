"""Token counts of one model call.

The convention is OpenAI's and LangChain's: ``input_tokens`` *includes* cache
reads and cache writes, ``output_tokens`` *includes* reasoning tokens. Adapters
normalise providers that report otherwise (Anthropic's raw usage excludes cache
tokens) with :meth:`Usage.from_exclusive`, so pricing has one rule to follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Self

from faremeter.errors import InvalidUsageError

__all__ = ["MAX_TOKENS_PER_CALL", "Usage", "UsageSource", "usage_totals"]

UsageSource = Literal["reported", "estimated", "mixed"]
"""Where counts came from: the provider, a tokenizer/heuristic, or a sum of both."""

MAX_TOKENS_PER_CALL = 100_000_000
"""Counts above this for a single call are treated as corrupt, not as usage.

The largest context windows are ~10M tokens; two orders of magnitude of head
room catches overflowed or garbage counters without rejecting anything real.
"""

_SOURCES = frozenset(("reported", "estimated", "mixed"))
_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "image_input_tokens",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """Token counts of one model call (or a sum of calls).

    Attributes:
        input_tokens: All prompt tokens, including cache reads and writes.
        output_tokens: All completion tokens, including reasoning.
        cache_read_tokens: Prompt tokens served from the provider's cache.
        cache_write_tokens: Prompt tokens written to the cache (any TTL).
        cache_write_1h_tokens: The part of ``cache_write_tokens`` written with a
            1-hour TTL (billed at a higher rate than 5-minute writes).
        reasoning_tokens: The part of ``output_tokens`` spent reasoning.
        audio_input_tokens: The part of ``input_tokens`` that was audio.
        audio_output_tokens: The part of ``output_tokens`` that was audio.
        image_input_tokens: The part of ``input_tokens`` that was images.
        source: ``"reported"`` by the provider, ``"estimated"`` by a tokenizer
            or heuristic, ``"mixed"`` for a sum of both. Never silently merged.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_input_tokens: int = 0
    source: UsageSource = "reported"

    def __post_init__(self) -> None:
        # Fast path: this runs on every recorded call, and nearly every Usage is
        # valid. The explicit checks below name exactly what is wrong otherwise.
        i, o = self.input_tokens, self.output_tokens
        cr, cw, cw1 = self.cache_read_tokens, self.cache_write_tokens, self.cache_write_1h_tokens
        r, ai, ao, ii = (
            self.reasoning_tokens,
            self.audio_input_tokens,
            self.audio_output_tokens,
            self.image_input_tokens,
        )
        if (
            type(i) is int
            and type(o) is int
            and type(cr) is int
            and type(cw) is int
            and type(cw1) is int
            and type(r) is int
            and type(ai) is int
            and type(ao) is int
            and type(ii) is int
            and 0 <= cr + cw <= i <= MAX_TOKENS_PER_CALL
            and 0 <= r + ao <= o <= MAX_TOKENS_PER_CALL
            and 0 <= cw1 <= cw
            and min(cr, cw, r, ai, ao, ii) >= 0
            and ai + ii <= i
            and self.source in _SOURCES
        ):
            return
        self._reject()

    def _reject(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if type(value) is not int:
                # bool is an int subclass; a float count is a caller bug worth naming.
                raise InvalidUsageError(
                    f"{name} must be an int, got {type(value).__name__} {value!r}"
                )
            if value < 0:
                raise InvalidUsageError(f"{name} must be >= 0, got {value}")
            if value > MAX_TOKENS_PER_CALL:
                raise InvalidUsageError(
                    f"{name}={value} exceeds {MAX_TOKENS_PER_CALL:,} tokens for one call;"
                    " refusing a corrupt counter"
                )
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise InvalidUsageError(
                "cache_read_tokens + cache_write_tokens "
                f"({self.cache_read_tokens} + {self.cache_write_tokens}) exceeds input_tokens "
                f"({self.input_tokens}); input_tokens must include cached tokens "
                "(use Usage.from_exclusive for providers that report them separately)"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise InvalidUsageError(
                f"cache_write_1h_tokens ({self.cache_write_1h_tokens}) exceeds "
                f"cache_write_tokens ({self.cache_write_tokens})"
            )
        if self.reasoning_tokens + self.audio_output_tokens > self.output_tokens:
            raise InvalidUsageError(
                f"reasoning_tokens ({self.reasoning_tokens}) + audio_output_tokens "
                f"({self.audio_output_tokens}) exceeds output_tokens ({self.output_tokens});"
                " output_tokens must include reasoning"
            )
        if self.audio_input_tokens + self.image_input_tokens > self.input_tokens:
            raise InvalidUsageError("audio_input_tokens + image_input_tokens exceeds input_tokens")
        if self.source not in ("reported", "estimated", "mixed"):
            raise InvalidUsageError(
                f"source must be 'reported', 'estimated' or 'mixed', got {self.source!r}"
            )

    @classmethod
    def from_exclusive(
        cls,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        reasoning_tokens: int = 0,
        source: UsageSource = "reported",
    ) -> Self:
        """Build from counts where ``input_tokens`` excludes the cache (Anthropic style).

        Anthropic reports ``input_tokens`` *without* ``cache_read_input_tokens``
        and ``cache_creation_input_tokens``; adding them here keeps a single
        convention everywhere else.
        """
        return cls(
            input_tokens=input_tokens + cache_read_tokens + cache_write_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            cache_write_1h_tokens=cache_write_1h_tokens,
            reasoning_tokens=reasoning_tokens,
            source=source,
        )

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens (cache and reasoning are already inside)."""
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Prompt tokens billed at the plain input rate."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def estimated(self) -> bool:
        """True when any part of the counts did not come from the provider."""
        return self.source != "reported"

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        # A sum is not one call: it may exceed the per-call sanity limit, and both
        # operands were validated already, so skip __post_init__.
        total = object.__new__(Usage)
        for name in _FIELDS:
            object.__setattr__(total, name, getattr(self, name) + getattr(other, name))
        object.__setattr__(total, "source", self.source if self.source == other.source else "mixed")
        return total

    def to_dict(self) -> dict[str, int | str]:
        """Non-zero counts plus the source, for storage and export."""
        out: dict[str, int | str] = {k: getattr(self, k) for k in _FIELDS if getattr(self, k)}
        out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: dict[str, int | str]) -> Self:
        """Inverse of :meth:`to_dict`; validates like the constructor."""
        kwargs = {k: v for k, v in data.items() if k in _FIELDS or k == "source"}
        return cls(**kwargs)  # type: ignore[arg-type]


def _compile_totals() -> Callable[[int, int, str], Usage]:
    """Generate ``usage_totals``: a Usage holding only the two totals, slot by slot.

    Most providers report just input and output totals; building those
    through the frozen dataclass's ``__init__`` (ten ``object.__setattr__``
    calls plus validation) is the largest single cost of recording a call.
    """
    given = {"input_tokens": "i", "output_tokens": "o", "source": "source"}
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": Usage}
    lines = ["def usage_totals(i, o, source):", "    u = _new(_cls)"]
    for index, name in enumerate(Usage.__dataclass_fields__):
        namespace[f"_set{index}"] = Usage.__dict__[name].__set__  # the slot's descriptor
        lines.append(f"    _set{index}(u, {given.get(name, '0')})")
    lines.append("    return u")
    exec("\n".join(lines), namespace)
    return namespace["usage_totals"]


_usage_totals = _compile_totals()


def usage_totals(input_tokens: int, output_tokens: int, source: UsageSource = "reported") -> Usage:
    """``Usage(input_tokens=..., output_tokens=..., source=...)``, fast, for valid counts.

    Counts outside ``0..MAX_TOKENS_PER_CALL`` (or not ints) go through the
    validating constructor, which names what is wrong.
    """
    if (
        type(input_tokens) is int
        and type(output_tokens) is int
        and 0 <= input_tokens <= MAX_TOKENS_PER_CALL
        and 0 <= output_tokens <= MAX_TOKENS_PER_CALL
        and source in _SOURCES
    ):
        return _usage_totals(input_tokens, output_tokens, source)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, source=source)
