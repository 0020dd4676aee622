"""Exact money for priced events.

Money is :class:`decimal.Decimal` US dollars: a float cannot represent $0.0000025
per token, and a ledger that sums a million events must not drift. An unknown
price is *unpriced* — every amount ``None`` plus a reason — never ``$0``, so a
report can say "3 calls could not be priced" instead of under-counting.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Self

__all__ = ["CURRENCY", "ZERO", "Cost", "format_usd", "tidy", "to_decimal"]

CURRENCY = "USD"
ZERO = Decimal(0)

_PARTS = ("input", "cache_read", "cache_write", "output", "reasoning", "tool")


def tidy(amount: Decimal) -> Decimal:
    """The same amount without trailing zeros (``0.0100000`` → ``0.01``), never in exponent form.

    Sums of per-token prices carry the catalog's precision; equality is
    unaffected, but people read ``Decimal('0.01')`` better.
    """
    if amount == amount.to_integral_value():
        return amount.quantize(Decimal(1))
    return amount.normalize()


def format_usd(amount: Decimal | None, *, exact: bool = False, unpriced: str = "unpriced") -> str:
    """Dollars as people read them: ``$6.39``, ``$0.712``, ``$0.0033``, ``$1,234.00``, ``$0``.

    Amounts of a dollar or more show cents; smaller ones keep four significant
    digits, so sub-cent agent costs never round to ``$0.00``. ``exact=True``
    shows every digit the ledger holds (``$0.00325``). ``unpriced`` for ``None``.
    """
    if amount is None:
        return unpriced
    if amount == 0:
        return "$0"
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    if not exact:
        if value >= 1:
            value = value.quantize(Decimal("0.01"))
        else:
            value = value.quantize(Decimal(1).scaleb(min(value.adjusted() - 3, -2)))
    text = f"{tidy(value):f}"
    whole, _, frac = text.partition(".")
    frac = frac.ljust(2, "0")
    return f"{sign}${int(whole):,}.{frac}"


def to_decimal(value: Decimal | int | float | str) -> Decimal:
    """Convert a price or amount to an exact Decimal.

    Floats go through ``repr`` so ``2.5e-06`` becomes ``Decimal('0.0000025')``
    (the number the author wrote), not the binary approximation.

    Raises:
        ValueError: For NaN, infinities and strings that are not numbers.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        try:
            result = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"must be finite, got {value!r}")
    return result


@dataclass(frozen=True, kw_only=True, slots=True)
class Cost:
    """What something cost, split by what was billed.

    Attributes:
        input: Uncached prompt tokens (text, audio and image).
        cache_read: Prompt tokens read from the provider cache.
        cache_write: Prompt tokens written to the provider cache (5 min and 1 h).
        output: Completion tokens that were not reasoning.
        reasoning: Reasoning tokens (at the reasoning rate, else the output rate).
        tool: Tool calls and units (per call / per record prices).
        unpriced_reason: Set when no price was known; every amount is then ``None``.
        model: The catalog id the call was priced as, when it was a model call.
    """

    input: Decimal | None = ZERO
    cache_read: Decimal | None = ZERO
    cache_write: Decimal | None = ZERO
    output: Decimal | None = ZERO
    reasoning: Decimal | None = ZERO
    tool: Decimal | None = ZERO
    unpriced_reason: str | None = None
    model: str | None = None

    @classmethod
    def unpriced(cls, reason: str, *, model: str | None = None) -> Self:
        """A cost that is not known — distinct from a cost of zero."""
        return cls(
            input=None,
            cache_read=None,
            cache_write=None,
            output=None,
            reasoning=None,
            tool=None,
            unpriced_reason=reason,
            model=model,
        )

    @classmethod
    def of_tool(cls, amount: Decimal | int | float | str) -> Self:
        """A tool charge of ``amount`` dollars."""
        return cls(tool=to_decimal(amount))

    @property
    def priced(self) -> bool:
        """False when the amount is unknown."""
        return self.unpriced_reason is None

    @property
    def total(self) -> Decimal | None:
        """The sum of all parts, or ``None`` when unpriced."""
        if self.unpriced_reason is not None:
            return None
        return (
            self.input  # type: ignore[operator]
            + self.cache_read
            + self.cache_write
            + self.output
            + self.reasoning
            + self.tool
        )

    @property
    def llm(self) -> Decimal | None:
        """Everything but tool charges."""
        total = self.total
        return None if total is None else total - self.tool  # type: ignore[operator]

    def __add__(self, other: object) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        if self.unpriced_reason is not None or other.unpriced_reason is not None:
            reasons = [r for r in (self.unpriced_reason, other.unpriced_reason) if r]
            return Cost.unpriced("; ".join(dict.fromkeys(reasons)))
        return Cost(
            input=self.input + other.input,  # type: ignore[operator]
            cache_read=self.cache_read + other.cache_read,  # type: ignore[operator]
            cache_write=self.cache_write + other.cache_write,  # type: ignore[operator]
            output=self.output + other.output,  # type: ignore[operator]
            reasoning=self.reasoning + other.reasoning,  # type: ignore[operator]
            tool=self.tool + other.tool,  # type: ignore[operator]
            model=self.model if self.model == other.model else None,
        )

    def to_dict(self) -> dict[str, str | None]:
        """Amounts as exact decimal strings, for storage and export."""
        out: dict[str, str | None] = {
            k: (None if getattr(self, k) is None else str(getattr(self, k))) for k in _PARTS
        }
        out["unpriced_reason"] = self.unpriced_reason
        out["model"] = self.model
        return out

    @classmethod
    def from_dict(cls, data: dict[str, str | None]) -> Self:
        """Inverse of :meth:`to_dict`."""
        reason = data.get("unpriced_reason")
        if reason:
            return cls.unpriced(reason, model=data.get("model"))
        parts: dict[str, Decimal] = {
            k: Decimal(v) for k in _PARTS if (v := data.get(k)) is not None
        }
        return cls(model=data.get("model"), **parts)  # pyright: ignore[reportArgumentType]

    def __str__(self) -> str:
        total = self.total
        return f"unpriced ({self.unpriced_reason})" if total is None else f"${total:f}"
