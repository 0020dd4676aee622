"""Hit rates, dollars saved and TTL suggestions per tool and per model, from the ledger.

Computed from stored spans: a ``cached`` span is a hit (its ``saved`` is what
it saved); a ``tool``/``llm`` span that ran normally is a miss of that tool or
model. Tools and models that never hit and carry no ``cache`` tag are not
cached at all and are left out, so uncached tools do not show as 0% rows.

The suggestion rule: a tool (or model) whose hit rate is below
``min_hit_rate`` *and* that missed at least ``min_repeated`` times on keys it
had already seen in the window is losing entries before they are asked for
again — its TTL is too short (or the cache too small). The estimated gain is
what those repeated misses cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from faremeter.spans import SpanKind, SpanRecord, SpanStatus, validate_attribute_name

__all__ = ["CacheReport", "CacheRow", "CacheSuggestion", "cache_report", "summarize_spans"]

_ZERO = Decimal(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheRow:
    """Cache effect for one tool or one model (and one ``by`` value, if asked).

    Attributes:
        kind: ``tool`` or ``llm``.
        name: Tool name, or the model.
        group: The ``by`` attribute's value (``None``: not grouped, or unset).
        hits: Calls served from the cache.
        misses: Calls that ran (and were paid for).
        saved: Sum of the hits' ``saved`` (hits that could not be priced add nothing).
        unpriced_hits: Hits whose saving is unknown.
        repeated_misses: Misses on a key already seen in the window (expired
            or evicted entries).
        repeated_miss_cost: What those repeated misses cost.
    """

    kind: str
    name: str
    group: str | None = None
    hits: int
    misses: int
    saved: Decimal
    unpriced_hits: int = 0
    repeated_misses: int = 0
    repeated_miss_cost: Decimal = _ZERO

    @property
    def lookups(self) -> int:
        """Calls that went through the cache."""
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 with no lookups)."""
        return self.hits / self.lookups if self.lookups else 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheSuggestion:
    """A computed recommendation ("raise the TTL of web_search").

    Attributes:
        kind: ``tool`` or ``llm``.
        name: The tool or model.
        hit_rate: Its current hit rate.
        repeated_misses: Misses on keys seen before in the window.
        potential_saving: What those misses cost (an upper bound of the gain).
        message: The sentence to show.
    """

    kind: str
    name: str
    hit_rate: float
    repeated_misses: int
    potential_saving: Decimal
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheReport:
    """Every cached tool and model over a window, with suggestions.

    Attributes:
        rows: One per tool / model, most saved first.
        suggestions: TTL suggestions, largest potential saving first.
        since: Window start (``None``: from the beginning).
        until: Window end (``None``: now).
    """

    rows: tuple[CacheRow, ...]
    suggestions: tuple[CacheSuggestion, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @property
    def saved(self) -> Decimal:
        """Total saved across rows."""
        return sum((r.saved for r in self.rows), _ZERO)

    @property
    def hits(self) -> int:
        """Total hits."""
        return sum(r.hits for r in self.rows)

    @property
    def hit_rate(self) -> float:
        """Overall hits over lookups."""
        lookups = sum(r.lookups for r in self.rows)
        return self.hits / lookups if lookups else 0.0

    def row(self, name: str, kind: str = "tool", group: str | None = None) -> CacheRow | None:
        """The row of one tool (or model with ``kind="llm"``), of one ``by`` group."""
        return next(
            (r for r in self.rows if r.name == name and r.kind == kind and r.group == group),
            None,
        )


class _Acc:
    __slots__ = (
        "hits",
        "misses",
        "repeated",
        "repeated_cost",
        "saved",
        "seen",
        "tagged",
        "unpriced",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.saved = _ZERO
        self.unpriced = 0
        self.repeated = 0
        self.repeated_cost = _ZERO
        self.seen: set[str] = set()
        self.tagged = False


def summarize_spans(
    spans: Iterable[SpanRecord],
    *,
    min_hit_rate: float = 0.2,
    min_repeated: int = 3,
    by: str | None = None,
) -> tuple[tuple[CacheRow, ...], tuple[CacheSuggestion, ...]]:
    """Rows and suggestions from spans in start order (the core of :func:`cache_report`)."""
    from faremeter.ledger.filters import attr_text

    groups: dict[tuple[str, str, str | None], _Acc] = {}
    for span in spans:
        value = None
        if by is not None:
            raw = span.attributes.get(by)
            value = None if raw is None else attr_text(raw)
        if span.kind is SpanKind.TOOL:
            group = ("tool", span.name, value)
        elif span.kind is SpanKind.LLM:
            group = ("llm", span.model or span.name, value)
        else:
            continue
        acc = groups.get(group)
        if acc is None:
            acc = groups[group] = _Acc()
        tag = span.attributes.get("cache")
        key = span.attributes.get("cache_key")
        if tag is not None:
            acc.tagged = True
        if span.status is SpanStatus.CACHED:
            acc.hits += 1
            if span.saved is None:
                acc.unpriced += 1
            else:
                acc.saved += span.saved
        elif span.status is SpanStatus.OK:
            acc.misses += 1
            if isinstance(key, str) and key in acc.seen:
                acc.repeated += 1
                acc.repeated_cost += span.cost.total or _ZERO
        else:
            continue
        if isinstance(key, str):
            acc.seen.add(key)
    rows: list[CacheRow] = []
    suggestions: list[CacheSuggestion] = []
    for (kind, name, value), acc in groups.items():
        if acc.hits == 0 and not acc.tagged:
            continue  # not a cached tool/model
        row = CacheRow(
            kind=kind,
            name=name,
            group=value,
            hits=acc.hits,
            misses=acc.misses,
            saved=acc.saved,
            unpriced_hits=acc.unpriced,
            repeated_misses=acc.repeated,
            repeated_miss_cost=acc.repeated_cost,
        )
        rows.append(row)
        if by is None and row.hit_rate < min_hit_rate and row.repeated_misses >= min_repeated:
            suggestions.append(
                CacheSuggestion(
                    kind=kind,
                    name=name,
                    hit_rate=row.hit_rate,
                    repeated_misses=row.repeated_misses,
                    potential_saving=row.repeated_miss_cost,
                    message=(
                        f"{name} cache hit rate is {row.hit_rate:.0%} while "
                        f"{row.repeated_misses} calls missed on keys already seen — consider "
                        f"increasing its TTL (up to ${row.repeated_miss_cost:f} more saved)"
                    ),
                )
            )
    rows.sort(key=lambda r: (-r.saved, r.kind, r.name, r.group or ""))
    suggestions.sort(key=lambda s: (-s.potential_saving, s.name))
    return tuple(rows), tuple(suggestions)


def cache_report(
    source: Any,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_hit_rate: float = 0.2,
    min_repeated: int = 3,
    by: str | None = None,
) -> CacheReport:
    """Hit rate and dollars saved per tool and per model over a window.

    Args:
        source: A :class:`~faremeter.Meter` or a :class:`~faremeter.ledger.Ledger`.
        since: Window start (aware datetime).
        until: Window end (aware datetime).
        by: Also split rows by this attribute (``user_id``, ``step``…); TTL
            suggestions are made on the unsplit report only.
        min_hit_rate: Below this hit rate, repeated misses trigger a TTL suggestion.
        min_repeated: Repeated misses needed before suggesting (noise guard).
    """
    if not 0.0 <= min_hit_rate <= 1.0:
        raise ValueError(f"min_hit_rate must be within [0, 1], got {min_hit_rate}")
    ledger = getattr(source, "ledger", source)
    # One query over the window, oldest first; summarize_spans skips other kinds.
    spans = ledger.spans(since=since, until=until)
    if by is not None:
        validate_attribute_name(by)
    rows, suggestions = summarize_spans(
        spans, min_hit_rate=min_hit_rate, min_repeated=min_repeated, by=by
    )
    return CacheReport(rows=rows, suggestions=suggestions, since=since, until=until)
