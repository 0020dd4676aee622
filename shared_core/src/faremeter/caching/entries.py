"""What a cache keeps per key: the value as JSON plus what producing it cost.

The cost is kept beside the value because a hit must report ``saved`` = what
the miss cost — the number that makes a cache's worth visible in dollars.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from faremeter.usage import Usage

__all__ = ["FORMAT", "CacheEntry", "decode_entry", "encode_entry"]

FORMAT = 1
"""Version of the stored JSON envelope; entries of another version are misses."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheEntry:
    """One cached result.

    Attributes:
        value: The result, as JSON-compatible data.
        cost: What producing it cost (the miss's total), ``None`` if unpriced.
        usage: Token counts of the call that produced it (model responses).
        model: The model that produced it (model responses).
        stored_at: When it was stored (cache clock, seconds).
        expires_at: When it stops being served (``None``: never).
        error: ``(exception type name, message)`` for a cached failure.
    """

    value: Any = None
    cost: Decimal | None = None
    usage: Usage | None = None
    model: str | None = None
    stored_at: float
    expires_at: float | None = None
    error: tuple[str, str] | None = None

    def expired(self, now: float) -> bool:
        """Whether the entry's time to live is over at ``now``."""
        return self.expires_at is not None and self.expires_at <= now


def encode_entry(entry: CacheEntry) -> str:
    """The stored JSON text of ``entry``.

    Raises:
        TypeError: When the value is not JSON-serialisable.
        ValueError: For NaN / infinity in the value.
    """
    doc: dict[str, Any] = {
        "f": FORMAT,
        "v": entry.value,
        "at": entry.stored_at,
    }
    if entry.cost is not None:
        doc["c"] = str(entry.cost)
    if entry.usage is not None:
        doc["u"] = entry.usage.to_dict()
    if entry.model is not None:
        doc["m"] = entry.model
    if entry.expires_at is not None:
        doc["x"] = entry.expires_at
    if entry.error is not None:
        doc["e"] = list(entry.error)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode_entry(text: str) -> CacheEntry | None:
    """The entry stored as ``text``; ``None`` for text this version cannot read."""
    try:
        doc: Any = json.loads(text)
        if not isinstance(doc, dict) or doc.get("f") != FORMAT:  # pyright: ignore[reportUnknownMemberType]
            return None
        cost = doc.get("c")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        usage = doc.get("u")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        error = doc.get("e")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        expires = doc.get("x")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        model = doc.get("m")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        return CacheEntry(
            value=doc.get("v"),  # pyright: ignore[reportUnknownMemberType]
            cost=None if cost is None else Decimal(str(cost)),  # pyright: ignore[reportUnknownArgumentType]
            usage=None if usage is None else Usage.from_dict(usage),  # pyright: ignore[reportUnknownArgumentType]
            model=model if isinstance(model, str) else None,
            stored_at=float(doc.get("at", 0.0)),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
            expires_at=None if expires is None else float(expires),  # pyright: ignore[reportUnknownArgumentType]
            error=None if error is None else (str(error[0]), str(error[1])),  # pyright: ignore[reportUnknownArgumentType]
        )
    except (ValueError, TypeError, KeyError, IndexError, ArithmeticError):
        return None
