"""``@meter.priced_tool``: a tool function whose every call is a priced ``tool`` span."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from faremeter.context import activate, deactivate
from faremeter.cost import Cost, to_decimal
from faremeter.errors import BudgetExceeded
from faremeter.spans import SpanKind, SpanStatus

if TYPE_CHECKING:
    from faremeter.meter import Meter
    from faremeter.open_span import OpenSpan

__all__ = ["ToolPricing", "wrap_priced_tool"]

logger = logging.getLogger("faremeter")

P = ParamSpec("P")
R = TypeVar("R")


class ToolPricing:
    """How one decorated tool is priced: per call, per unit, or by the catalog."""

    __slots__ = ("name", "per_call", "per_unit", "units")

    def __init__(
        self,
        name: str,
        *,
        price_per_call: Decimal | float | str | None,
        price_per_unit: Decimal | float | str | None,
        units: Callable[[Any], int | Decimal] | None,
    ) -> None:
        self.name = name
        self.per_call = None if price_per_call is None else to_decimal(price_per_call)
        self.per_unit = None if price_per_unit is None else to_decimal(price_per_unit)
        for label, value in (("price_per_call", self.per_call), ("price_per_unit", self.per_unit)):
            if value is not None and value < 0:
                raise ValueError(f"{label} must be >= 0, got {value}")
        self.units = units

    def known_price(self) -> Decimal | None:
        """The price of one call when it is known before the call (for budget reservations)."""
        if self.per_unit is None and self.per_call is not None:
            return self.per_call
        return None

    def cost(self, meter: Meter, result: Any) -> Cost:
        """What one call that returned ``result`` cost."""
        n_units = self.units(result) if self.units is not None else None
        if self.per_call is None and self.per_unit is None:
            return meter.catalog.tool_cost(self.name, calls=1, units=n_units)
        amount = self.per_call or Decimal(0)
        if self.per_unit is not None:
            amount += self.per_unit * to_decimal(n_units or 0)
        return Cost.of_tool(amount)


def wrap_priced_tool(meter: Meter, func: Callable[P, R], pricing: ToolPricing) -> Callable[P, R]:
    """Wrap ``func`` (sync or async) so each call is a priced ``tool`` span.

    A known per-call price is reserved against the meter's budgets before the
    body runs: a denied tool never runs. A tool that raises is an error span,
    not charged, and the exception propagates unchanged.
    """
    try:
        signature: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without one: hash the raw arguments
        signature = None

    def args_hash(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        # What the runaway-loop detector groups calls by: the arguments by
        # parameter name, canonical like the tool cache's keys (never stored).
        from faremeter.caching.keys import canonical_json, digest

        named: Any = {"args": list(args), "kwargs": kwargs}
        if signature is not None:
            with contextlib.suppress(TypeError):  # the call itself will fail the same way
                named = dict(signature.bind(*args, **kwargs).arguments)
        try:
            return digest(canonical_json(named))
        except (TypeError, ValueError):  # no canonical form: hash their text
            return digest(canonical_json(str(named)))

    def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[OpenSpan, Any]:
        span = meter.start_span(pricing.name, kind=SpanKind.TOOL)
        try:
            span.attributes["tool_args_hash"] = args_hash(args, kwargs)
        except Exception:  # never let bookkeeping break the tool
            logger.debug("faremeter: hashing %s's arguments failed", pricing.name, exc_info=True)
        try:
            reservation = meter.reserve_call(span, pricing.known_price())
        except BudgetExceeded as exc:
            span.end(status=SpanStatus.DENIED, error=exc, error_class="budget", cost=Cost())
            raise
        return span, reservation

    def finish(span: OpenSpan, reservation: Any, result: Any) -> None:
        try:
            cost = pricing.cost(meter, result)
        except Exception:  # a bad units() must not break the tool
            logger.exception("faremeter: pricing tool %r failed", pricing.name)
            cost = Cost.unpriced("pricing the tool failed")
        meter.settle_call(reservation, cost)
        span.end(cost=cost)

    def failed(span: OpenSpan, reservation: Any, exc: BaseException) -> None:
        meter.settle_call(reservation, None, failed=True)
        span.end(status=SpanStatus.ERROR, error=exc, cost=Cost())

    if inspect.iscoroutinefunction(func):
        async_func: Callable[..., Awaitable[Any]] = func

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            span, reservation = begin(args, kwargs)
            token = activate(span)
            try:
                result = await async_func(*args, **kwargs)
            except BaseException as exc:
                failed(span, reservation, exc)
                raise
            finally:
                deactivate(token)
            finish(span, reservation, result)
            return result

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        span, reservation = begin(args, kwargs)
        token = activate(span)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            failed(span, reservation, exc)
            raise
        finally:
            deactivate(token)
        finish(span, reservation, result)
        return result

    return wrapper
