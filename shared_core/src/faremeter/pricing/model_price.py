"""The price of one model: rates, long-context tiers, batch rates, limits.

Rates are given per **million** tokens (how providers publish them, and how a
human can check them) and stored as exact :class:`~decimal.Decimal`. At
construction every rate a request can bill at is resolved once into per-token
Decimals for the base price, each long-context tier and batch mode, so pricing a
call is a handful of integer-times-Decimal multiplications with no lookups,
validation or fallbacks left on the hot path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, NamedTuple

from faremeter.cost import ZERO as _ZERO
from faremeter.cost import Cost, to_decimal
from faremeter.usage import Usage

__all__ = ["OVERRIDE_VERSION", "ModelPrice", "PriceTier", "Rate"]

Rate = Decimal | int | float | str
"""Anything :func:`faremeter.cost.to_decimal` accepts: a price as the user wrote it."""

OVERRIDE_VERSION: Final = "override"
"""``ModelPrice.version`` of prices given in code or ``faremeter.toml``."""

_MTOK: Final = 6  # per-million -> per-token is an exact decimal shift
_HALF: Final = Decimal("0.5")

_RATE_NAMES: Final = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "reasoning",
)


class _Rates(NamedTuple):
    """Fully resolved per-token rates (USD) one request bills at."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    reasoning: Decimal
    input_audio: Decimal
    output_audio: Decimal


def _rate(name: str, value: Rate | None) -> Decimal | None:
    if value is None:
        return None
    try:
        result = to_decimal(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    except (TypeError, AttributeError):
        raise ValueError(f"{name}: not a number: {value!r}") from None
    if result < 0:
        raise ValueError(f"{name}: must be >= 0, got {value}")
    return result


def _per_token(per_mtok: Decimal | None) -> Decimal | None:
    return None if per_mtok is None else per_mtok.scaleb(-_MTOK)


def _per_mtok(per_token: str | None) -> Decimal | None:
    return None if per_token is None else Decimal(per_token).scaleb(_MTOK)


class PriceTier:
    """Rates that replace the base rates when a prompt is above a threshold.

    LiteLLM's map (and the providers: Gemini, Claude 1M context, GPT-5.4
    above 272k) reprice the **whole request**, not only the tokens past the
    threshold, once ``input_tokens > above_tokens``. A rate left ``None``
    keeps the rate of the tier below (or the base rate).

    Attributes:
        above_tokens: The threshold; the tier applies when the prompt has
            strictly more input tokens (or exactly as many when ``inclusive``).
        inclusive: ``True`` for providers that switch at ``>=`` (xAI).
    """

    __slots__ = (
        "above_tokens",
        "batch_cache_read_per_mtok",
        "batch_cache_write_per_mtok",
        "batch_input_per_mtok",
        "batch_output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_1h_per_mtok",
        "cache_write_per_mtok",
        "inclusive",
        "input_per_mtok",
        "output_per_mtok",
        "reasoning_per_mtok",
    )

    above_tokens: int
    inclusive: bool
    input_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    cache_read_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    cache_write_1h_per_mtok: Decimal | None
    reasoning_per_mtok: Decimal | None
    batch_input_per_mtok: Decimal | None
    batch_output_per_mtok: Decimal | None
    batch_cache_read_per_mtok: Decimal | None
    batch_cache_write_per_mtok: Decimal | None

    def __init__(
        self,
        *,
        above_tokens: int,
        inclusive: bool = False,
        input_per_mtok: Rate | None = None,
        output_per_mtok: Rate | None = None,
        cache_read_per_mtok: Rate | None = None,
        cache_write_per_mtok: Rate | None = None,
        cache_write_1h_per_mtok: Rate | None = None,
        reasoning_per_mtok: Rate | None = None,
        batch_input_per_mtok: Rate | None = None,
        batch_output_per_mtok: Rate | None = None,
        batch_cache_read_per_mtok: Rate | None = None,
        batch_cache_write_per_mtok: Rate | None = None,
    ) -> None:
        if type(above_tokens) is not int or above_tokens < 0:
            raise ValueError(f"above_tokens must be an int >= 0, got {above_tokens!r}")
        values: dict[str, object] = {
            "above_tokens": above_tokens,
            "inclusive": bool(inclusive),
            "input_per_mtok": _rate("input_per_mtok", input_per_mtok),
            "output_per_mtok": _rate("output_per_mtok", output_per_mtok),
            "cache_read_per_mtok": _rate("cache_read_per_mtok", cache_read_per_mtok),
            "cache_write_per_mtok": _rate("cache_write_per_mtok", cache_write_per_mtok),
            "cache_write_1h_per_mtok": _rate("cache_write_1h_per_mtok", cache_write_1h_per_mtok),
            "reasoning_per_mtok": _rate("reasoning_per_mtok", reasoning_per_mtok),
            "batch_input_per_mtok": _rate("batch_input_per_mtok", batch_input_per_mtok),
            "batch_output_per_mtok": _rate("batch_output_per_mtok", batch_output_per_mtok),
            "batch_cache_read_per_mtok": _rate(
                "batch_cache_read_per_mtok", batch_cache_read_per_mtok
            ),
            "batch_cache_write_per_mtok": _rate(
                "batch_cache_write_per_mtok", batch_cache_write_per_mtok
            ),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PriceTier is immutable; cannot set {name!r}")

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, s) for s in sorted(self.__slots__))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceTier) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [f"above_tokens={self.above_tokens}"]
        if self.inclusive:
            parts.append("inclusive=True")
        for name in self.__slots__:
            value = getattr(self, name)
            if name.endswith("_per_mtok") and value is not None:
                parts.append(f"{name}={value}")
        return f"PriceTier({', '.join(parts)})"


class ModelPrice:
    """What one model charges, per million tokens.

    Keyword-only and immutable. Only ``input_per_mtok`` and ``output_per_mtok``
    are required; every other rate falls back the way providers (and LiteLLM)
    bill when they publish no separate price:

    * ``cache_read_per_mtok`` / ``cache_write_per_mtok`` → the input rate
      (a provider with no cache price bills cached tokens as ordinary input —
      never as free);
    * ``cache_write_1h_per_mtok`` → the 5-minute cache-write rate;
    * ``reasoning_per_mtok`` → the output rate;
    * batch rates → half the standard rate (the 50% batch discount).

    Example::

        ModelPrice(input_per_mtok=3, output_per_mtok=15, cache_read_per_mtok="0.3")

    Attributes:
        provider: Who serves it (LiteLLM's ``litellm_provider`` for snapshot entries).
        mode: ``chat``, ``embedding``, ``completion``, ... (LiteLLM's ``mode``).
        tiers: Long-context tiers, ascending by threshold.
        max_input_tokens: Context window, when known (the router needs it).
        max_output_tokens: Largest completion, when known.
        capabilities: Flags such as ``function_calling``, ``vision``,
            ``response_schema``, ``reasoning``.
        effective_from: When this price took effect (``None``: always). A
            catalog can hold several dated prices for one model.
        version: Which table this price came from, recorded with each charge:
            the snapshot version (``litellm-1.106.2@2026-11-23``) or ``override``.
    """

    __slots__ = (
        "_base",
        "_batch",
        "_batch_tiers",
        "_tiers",
        "batch_cache_read_per_mtok",
        "batch_cache_write_per_mtok",
        "batch_input_per_mtok",
        "batch_output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_1h_per_mtok",
        "cache_write_per_mtok",
        "capabilities",
        "effective_from",
        "input_audio_per_mtok",
        "input_per_mtok",
        "max_input_tokens",
        "max_output_tokens",
        "mode",
        "output_audio_per_mtok",
        "output_per_mtok",
        "provider",
        "reasoning_per_mtok",
        "tiers",
        "version",
    )

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    cache_write_1h_per_mtok: Decimal | None
    reasoning_per_mtok: Decimal | None
    input_audio_per_mtok: Decimal | None
    output_audio_per_mtok: Decimal | None
    batch_input_per_mtok: Decimal | None
    batch_output_per_mtok: Decimal | None
    batch_cache_read_per_mtok: Decimal | None
    batch_cache_write_per_mtok: Decimal | None
    tiers: tuple[PriceTier, ...]
    provider: str | None
    mode: str | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    capabilities: frozenset[str]
    effective_from: dt.datetime | None
    version: str
    _base: _Rates
    _batch: _Rates
    # Descending by threshold: (threshold, inclusive, rates).
    _tiers: tuple[tuple[int, bool, _Rates], ...]
    _batch_tiers: tuple[tuple[int, bool, _Rates], ...]

    def __init__(
        self,
        *,
        input_per_mtok: Rate,
        output_per_mtok: Rate,
        cache_read_per_mtok: Rate | None = None,
        cache_write_per_mtok: Rate | None = None,
        cache_write_1h_per_mtok: Rate | None = None,
        reasoning_per_mtok: Rate | None = None,
        input_audio_per_mtok: Rate | None = None,
        output_audio_per_mtok: Rate | None = None,
        batch_input_per_mtok: Rate | None = None,
        batch_output_per_mtok: Rate | None = None,
        batch_cache_read_per_mtok: Rate | None = None,
        batch_cache_write_per_mtok: Rate | None = None,
        tiers: Iterable[PriceTier] = (),
        provider: str | None = None,
        mode: str | None = None,
        max_input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        capabilities: Iterable[str] = (),
        effective_from: dt.datetime | dt.date | None = None,
        version: str = OVERRIDE_VERSION,
    ) -> None:
        inp = _rate("input_per_mtok", input_per_mtok)
        out = _rate("output_per_mtok", output_per_mtok)
        if inp is None or out is None:
            raise ValueError("input_per_mtok and output_per_mtok are required")
        for name, limit in (
            ("max_input_tokens", max_input_tokens),
            ("max_output_tokens", max_output_tokens),
        ):
            if limit is not None and (type(limit) is not int or limit <= 0):
                raise ValueError(f"{name} must be a positive int, got {limit!r}")
        tier_list = tuple(sorted(tiers, key=lambda t: t.above_tokens))
        if len({t.above_tokens for t in tier_list}) != len(tier_list):
            raise ValueError("two tiers have the same above_tokens threshold")
        values: dict[str, object] = {
            "input_per_mtok": inp,
            "output_per_mtok": out,
            "cache_read_per_mtok": _rate("cache_read_per_mtok", cache_read_per_mtok),
            "cache_write_per_mtok": _rate("cache_write_per_mtok", cache_write_per_mtok),
            "cache_write_1h_per_mtok": _rate("cache_write_1h_per_mtok", cache_write_1h_per_mtok),
            "reasoning_per_mtok": _rate("reasoning_per_mtok", reasoning_per_mtok),
            "input_audio_per_mtok": _rate("input_audio_per_mtok", input_audio_per_mtok),
            "output_audio_per_mtok": _rate("output_audio_per_mtok", output_audio_per_mtok),
            "batch_input_per_mtok": _rate("batch_input_per_mtok", batch_input_per_mtok),
            "batch_output_per_mtok": _rate("batch_output_per_mtok", batch_output_per_mtok),
            "batch_cache_read_per_mtok": _rate(
                "batch_cache_read_per_mtok", batch_cache_read_per_mtok
            ),
            "batch_cache_write_per_mtok": _rate(
                "batch_cache_write_per_mtok", batch_cache_write_per_mtok
            ),
            "tiers": tier_list,
            "provider": provider,
            "mode": mode,
            "max_input_tokens": max_input_tokens,
            "max_output_tokens": max_output_tokens,
            "capabilities": frozenset(capabilities),
            "effective_from": _as_utc(effective_from),
            "version": version,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self._precompute()

    # ------------------------------------------------------------------ building

    def _precompute(self) -> None:
        """Resolve every fallback once so :meth:`cost` never has to."""
        raw: dict[str, Decimal | None] = {
            "input": self.input_per_mtok,
            "output": self.output_per_mtok,
            "cache_read": self.cache_read_per_mtok,
            "cache_write": self.cache_write_per_mtok,
            "cache_write_1h": self.cache_write_1h_per_mtok,
            "reasoning": self.reasoning_per_mtok,
        }
        batch_raw: dict[str, Decimal | None] = {
            "input": self.batch_input_per_mtok,
            "output": self.batch_output_per_mtok,
            "cache_read": self.batch_cache_read_per_mtok,
            "cache_write": self.batch_cache_write_per_mtok,
        }
        base = self._resolve(raw)
        set_ = object.__setattr__
        set_(self, "_base", base)
        set_(self, "_batch", self._resolve_batch(base, batch_raw))
        tiers: list[tuple[int, bool, _Rates]] = []
        batch_tiers: list[tuple[int, bool, _Rates]] = []
        for tier in self.tiers:
            # A tier's missing rate keeps the rate of the tier below; LiteLLM
            # walks thresholds in ascending order with the same carry-over.
            for name in ("input", "output", "cache_read", "cache_write", "cache_write_1h"):
                value: Decimal | None = getattr(tier, f"{name}_per_mtok")
                if value is not None:
                    raw[name] = value
            if tier.reasoning_per_mtok is not None:
                raw["reasoning"] = tier.reasoning_per_mtok
            for name in ("input", "output", "cache_read", "cache_write"):
                value = getattr(tier, f"batch_{name}_per_mtok")
                if value is not None:
                    batch_raw[name] = value
            rates = self._resolve(raw)
            tiers.append((tier.above_tokens, tier.inclusive, rates))
            batch_tiers.append(
                (tier.above_tokens, tier.inclusive, self._resolve_batch(rates, batch_raw))
            )
        set_(self, "_tiers", tuple(reversed(tiers)))
        set_(self, "_batch_tiers", tuple(reversed(batch_tiers)))

    def _resolve(self, raw: Mapping[str, Decimal | None]) -> _Rates:
        inp = raw["input"]
        out = raw["output"]
        assert inp is not None and out is not None
        cache_write = raw["cache_write"] if raw["cache_write"] is not None else inp
        cache_read = raw["cache_read"] if raw["cache_read"] is not None else inp
        cache_write_1h = raw["cache_write_1h"] if raw["cache_write_1h"] is not None else cache_write
        # An explicit reasoning rate is a model property; without one reasoning
        # bills as output (at the tier's output rate when a tier applies).
        reasoning = raw["reasoning"] if raw["reasoning"] is not None else out
        input_audio = self.input_audio_per_mtok if self.input_audio_per_mtok is not None else inp
        output_audio = self.output_audio_per_mtok if self.output_audio_per_mtok is not None else out
        return _Rates(
            input=_scaled(inp),
            output=_scaled(out),
            cache_read=_scaled(cache_read),
            cache_write=_scaled(cache_write),
            cache_write_1h=_scaled(cache_write_1h),
            reasoning=_scaled(reasoning),
            input_audio=_scaled(input_audio),
            output_audio=_scaled(output_audio),
        )

    @staticmethod
    def _resolve_batch(standard: _Rates, batch_raw: Mapping[str, Decimal | None]) -> _Rates:
        def pick(name: str, fallback: Decimal) -> Decimal:
            value = batch_raw.get(name)
            return _scaled(value) if value is not None else fallback * _HALF

        inp = pick("input", standard.input)
        out = pick("output", standard.output)
        return _Rates(
            input=inp,
            output=out,
            cache_read=pick("cache_read", standard.cache_read),
            cache_write=pick("cache_write", standard.cache_write),
            # No source publishes batch 1-hour writes; the 50% discount applies.
            cache_write_1h=standard.cache_write_1h * _HALF,
            reasoning=(
                out if standard.reasoning == standard.output else standard.reasoning * _HALF
            ),
            input_audio=standard.input_audio * _HALF,
            output_audio=standard.output_audio * _HALF,
        )

    @classmethod
    def from_snapshot(cls, entry: Mapping[str, Any], *, version: str) -> ModelPrice:
        """Build from one entry of the bundled ``prices.json`` (per-token strings)."""
        batch: Mapping[str, str] = entry.get("batch") or {}
        tiers: list[PriceTier] = []
        for t in entry.get("tiers") or ():
            tb: Mapping[str, str] = t.get("batch") or {}
            tiers.append(
                PriceTier(
                    above_tokens=int(t["above"]),
                    inclusive=bool(t.get("inclusive", False)),
                    input_per_mtok=_per_mtok(t.get("input")),
                    output_per_mtok=_per_mtok(t.get("output")),
                    cache_read_per_mtok=_per_mtok(t.get("cache_read")),
                    cache_write_per_mtok=_per_mtok(t.get("cache_write")),
                    cache_write_1h_per_mtok=_per_mtok(t.get("cache_write_1h")),
                    reasoning_per_mtok=_per_mtok(t.get("reasoning")),
                    batch_input_per_mtok=_per_mtok(tb.get("input")),
                    batch_output_per_mtok=_per_mtok(tb.get("output")),
                    batch_cache_read_per_mtok=_per_mtok(tb.get("cache_read")),
                    batch_cache_write_per_mtok=_per_mtok(tb.get("cache_write")),
                )
            )
        return cls(
            input_per_mtok=_per_mtok(entry.get("input", "0")) or Decimal(0),
            output_per_mtok=_per_mtok(entry.get("output", "0")) or Decimal(0),
            cache_read_per_mtok=_per_mtok(entry.get("cache_read")),
            cache_write_per_mtok=_per_mtok(entry.get("cache_write")),
            cache_write_1h_per_mtok=_per_mtok(entry.get("cache_write_1h")),
            reasoning_per_mtok=_per_mtok(entry.get("reasoning")),
            input_audio_per_mtok=_per_mtok(entry.get("input_audio")),
            output_audio_per_mtok=_per_mtok(entry.get("output_audio")),
            batch_input_per_mtok=_per_mtok(batch.get("input")),
            batch_output_per_mtok=_per_mtok(batch.get("output")),
            batch_cache_read_per_mtok=_per_mtok(batch.get("cache_read")),
            batch_cache_write_per_mtok=_per_mtok(batch.get("cache_write")),
            tiers=tiers,
            provider=entry.get("provider"),
            mode=entry.get("mode"),
            max_input_tokens=entry.get("max_input_tokens"),
            max_output_tokens=entry.get("max_output_tokens"),
            capabilities=entry.get("capabilities") or (),
            version=version,
        )

    # -------------------------------------------------------------- capabilities
    # Named views of ``capabilities`` (LiteLLM's ``supports_*`` flags) for the
    # router's capability filter; pricing never reads them.

    @property
    def supports_function_calling(self) -> bool:
        """The model accepts tool / function definitions."""
        return "function_calling" in self.capabilities

    @property
    def supports_vision(self) -> bool:
        """The model accepts image input."""
        return "vision" in self.capabilities

    @property
    def supports_response_schema(self) -> bool:
        """The model honours a JSON schema for structured output."""
        return "response_schema" in self.capabilities

    @property
    def context_window(self) -> int | None:
        """Largest prompt in tokens (``max_input_tokens``), when known."""
        return self.max_input_tokens

    # ------------------------------------------------------------------- pricing

    def cost(self, usage: Usage, *, batch: bool = False, model: str | None = None) -> Cost:
        """Price one call's usage at this model's rates.

        Args:
            usage: Token counts (validated by their constructor; not re-checked).
            batch: Bill at batch-API rates.
            model: The id to record as ``Cost.model``.
        """
        return self._cost(usage, batch, model)

    def _cost(self, usage: Usage, batch: bool, model: str | None) -> Cost:
        # The hot path (<= 2 µs target): pick the rate set, then multiply;
        # zero counts skip their multiplication entirely.
        n_in = usage.input_tokens
        if batch:
            rates = self._batch
            tiers = self._batch_tiers
        else:
            rates = self._base
            tiers = self._tiers
        if tiers:
            for above, inclusive, tier_rates in tiers:
                if n_in > above or (inclusive and n_in == above):
                    rates = tier_rates
                    break
        r_in, r_out, r_read, r_write, r_write_1h, r_reason, r_audio_in, r_audio_out = rates
        cache_read = usage.cache_read_tokens
        cache_write = usage.cache_write_tokens
        reasoning = usage.reasoning_tokens
        audio_in = usage.audio_input_tokens
        audio_out = usage.audio_output_tokens
        input_cost = (n_in - cache_read - cache_write - audio_in) * r_in
        output_cost = (usage.output_tokens - reasoning - audio_out) * r_out
        if audio_in:
            input_cost += audio_in * r_audio_in
        if audio_out:
            output_cost += audio_out * r_audio_out
        if cache_write:
            write_1h = usage.cache_write_1h_tokens
            write_cost = (cache_write - write_1h) * r_write
            if write_1h:
                write_cost += write_1h * r_write_1h
        else:
            write_cost = _ZERO
        return _make_cost(
            input_cost,
            cache_read * r_read if cache_read else _ZERO,
            write_cost,
            output_cost,
            reasoning * r_reason if reasoning else _ZERO,
            model,
        )

    def rates_for(self, input_tokens: int, *, batch: bool = False) -> Mapping[str, Decimal]:
        """Per-million rates a request with ``input_tokens`` prompt tokens bills at."""
        rates = self._batch if batch else self._base
        for above, inclusive, tier_rates in self._batch_tiers if batch else self._tiers:
            if input_tokens > above or (inclusive and input_tokens == above):
                rates = tier_rates
                break
        return {name: getattr(rates, name).scaleb(_MTOK) for name in _RATE_NAMES}

    # --------------------------------------------------------------- value object

    def replace(self, **changes: Any) -> ModelPrice:
        """A copy with some fields changed (e.g. ``effective_from``)."""
        fields: dict[str, Any] = {
            name: getattr(self, name) for name in self.__slots__ if not name.startswith("_")
        }
        fields.update(changes)
        return ModelPrice(**fields)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ModelPrice is immutable; cannot set {name!r}")

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, s) for s in self.__slots__ if not s.startswith("_"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelPrice) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [f"input_per_mtok={self.input_per_mtok}", f"output_per_mtok={self.output_per_mtok}"]
        for name in self.__slots__:
            if name.startswith("_") or name in ("input_per_mtok", "output_per_mtok"):
                continue
            value = getattr(self, name)
            if value is None or value == () or value == frozenset():
                continue
            parts.append(f"{name}={value!r}")
        return f"ModelPrice({', '.join(parts)})"


def _cost_maker() -> Callable[[Decimal, Decimal, Decimal, Decimal, Decimal, str | None], Cost]:
    """A fast constructor for :class:`Cost` values made on the pricing hot path.

    ``Cost`` is a frozen, slotted dataclass whose generated ``__init__`` costs
    ~1.4 µs — most of the 2 µs budget. Priced amounts are already exact
    Decimals, so the slots are filled directly through their member
    descriptors (~3x faster; the result is an ordinary, equal ``Cost``). If
    ``Cost`` ever stops being slotted, fall back to the constructor.
    """
    try:
        slots = {name: Cost.__dict__[name].__set__ for name in _COST_SLOTS}
    except (KeyError, AttributeError):  # pragma: no cover - Cost changed shape
        slots = None
    if slots is None or set(getattr(Cost, "__slots__", ())) != set(_COST_SLOTS):

        def construct(
            i: Decimal, r: Decimal, w: Decimal, o: Decimal, z: Decimal, model: str | None
        ) -> Cost:  # pragma: no cover - only if Cost changes shape
            return Cost(input=i, cache_read=r, cache_write=w, output=o, reasoning=z, model=model)

        return construct
    new = object.__new__
    s_in, s_read, s_write, s_out = (
        slots["input"],
        slots["cache_read"],
        slots["cache_write"],
        slots["output"],
    )
    s_reason, s_tool, s_unpriced, s_model = (
        slots["reasoning"],
        slots["tool"],
        slots["unpriced_reason"],
        slots["model"],
    )

    def make(i: Decimal, r: Decimal, w: Decimal, o: Decimal, z: Decimal, model: str | None) -> Cost:
        cost = new(Cost)
        s_in(cost, i)
        s_read(cost, r)
        s_write(cost, w)
        s_out(cost, o)
        s_reason(cost, z)
        s_tool(cost, _ZERO)
        s_unpriced(cost, None)
        s_model(cost, model)
        return cost

    return make


_COST_SLOTS: Final = (
    "input",
    "cache_read",
    "cache_write",
    "output",
    "reasoning",
    "tool",
    "unpriced_reason",
    "model",
)
_make_cost: Final = _cost_maker()


def _scaled(per_mtok: Decimal) -> Decimal:
    result = _per_token(per_mtok)
    assert result is not None
    return result


def _as_utc(value: dt.datetime | dt.date | None) -> dt.datetime | None:
    """Effective dates compare as aware UTC datetimes; a bare date is midnight UTC."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
