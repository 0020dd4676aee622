"""`BudgetManager`: reserve before a call, settle after it, alert on the way.

The lifecycle of every priced call is::

    res = manager.reserve(attributes=..., trace_id=..., amount=estimate, kind="llm", name=model)
    try:
        response = call()                  # only runs when the money is held
    except BaseException:
        res.release()                      # failed / cancelled: bill nothing
        raise
    res.settle(actual_cost)                # bill what it really cost

``reserve`` holds ``amount`` against *every* budget the call matches in one
atomic store operation, or raises :class:`~faremeter.errors.BudgetExceeded`
before anything is sent. That is what guarantees a ``deny`` limit: committed
spend plus money in flight never exceeds it, whatever the concurrency, as long
as calls cost no more than they reserved (an overrun is settled at its true
cost, counted in :meth:`BudgetManager.health` and bounded by the estimation
error of that one call).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from faremeter.alerts import Alert, AlertDispatcher, AlertSink
from faremeter.budgets.budget import Budget
from faremeter.budgets.reservation import Reservation
from faremeter.budgets.status import BudgetHealth, BudgetStatus
from faremeter.budgets.stores import (
    BudgetStore,
    Check,
    MemoryBudgetStore,
    StoreUnavailable,
    from_units,
    open_store,
    to_units,
)
from faremeter.budgets.throttle import Throttle
from faremeter.budgets.windows import WindowSpan, window_at
from faremeter.errors import BudgetExceeded

if TYPE_CHECKING:
    from faremeter.budgets.estimate import Message
    from faremeter.pricing.catalog import PriceCatalog

__all__ = ["BudgetManager", "FitRequest"]

logger = logging.getLogger("faremeter")

_NS = 1_000_000_000
_ZERO = Decimal(0)
_PLAN_CACHE_MAX = 10_000
_WARN_EVERY_NS = 60 * _NS
_FOREVER = 1 << 62


@dataclass(frozen=True, kw_only=True, slots=True)
class FitRequest:
    """What a ``degrade`` fitter is asked: make this call fit in ``available``.

    Attributes:
        model: The model the call asked for.
        max_tokens: Its output cap (``None``: unset).
        available: USD left under the budget that refused it.
        input_tokens: The prompt's counted tokens.
        budget: The budget that refused it.
    """

    model: str
    max_tokens: int | None
    available: Decimal
    input_tokens: int
    budget: str


Fitter = Callable[[FitRequest], "tuple[str, int | None] | None"]
"""Returns ``(model, max_tokens)`` to try instead, or ``None`` when nothing fits."""


class _Target:
    """One budget counter a call lands in; its Check is cached per window."""

    __slots__ = ("base", "budget", "check", "index", "span", "subject", "warn_units")

    def __init__(self, budget: Budget, index: int, subject: str, prefix: str) -> None:
        self.budget = budget
        self.index = index
        self.subject = subject
        self.base = f"{prefix}{budget.name}:{subject}:"
        self.span: WindowSpan | None = None
        self.check: Check | None = None
        self.warn_units: tuple[tuple[Decimal, int], ...] = ()


class _Plan:
    """The targets of one attribute combination, with their checks cached per window."""

    __slots__ = ("checks", "names", "targets", "until")

    def __init__(self, targets: tuple[_Target, ...]) -> None:
        self.targets = targets
        self.names = tuple(t.budget.name for t in targets)
        self.checks: list[Check] = []
        self.until = -1  # checks valid while now < until


class BudgetManager:
    """Enforces a set of budgets against a shared store.

    Args:
        budgets: The budgets (names must be unique).
        store: ``None``/``"memory"`` (this process), ``"sqlite:///path"`` (this
            host), ``"redis://host:port/db"`` (a fleet), or a store object.
        clock: Nanoseconds since the epoch; injectable (tests, simulations).
        sinks: Where alerts go (default: logging).
        unpriced: A call that cannot be priced is refused (``"deny"``,
            default) or let through, flagged and counted (``"allow"``); it
            still cannot start once a matching budget is used up.
        fail: When the store is unreachable: let calls through unchecked
            (``"open"``, default: an outage of the budget store does not stop
            the product) or refuse them (``"closed"``). Logged and counted.
        store_timeout_s: Longest a store operation may take before the store
            counts as unreachable.
        throttle_max_wait_s: Longest a ``throttle`` budget makes a call wait;
            a call that would wait longer is refused.
        sleep: Blocking wait (injectable); default ``time.sleep``.
        asleep: Async wait (injectable); default ``asyncio.sleep``.
        min_output_tokens: Smallest ``max_tokens`` worth fitting a call down
            to under ``degrade``.
    """

    def __init__(
        self,
        budgets: Iterable[Budget] = (),
        *,
        store: str | BudgetStore | None = None,
        clock: Callable[[], int] | None = None,
        sinks: Iterable[AlertSink] | None = None,
        unpriced: Literal["deny", "allow"] = "deny",
        fail: Literal["open", "closed"] = "open",
        store_timeout_s: float = 0.5,
        throttle_max_wait_s: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        asleep: Callable[[float], Awaitable[None]] | None = None,
        min_output_tokens: int = 16,
    ) -> None:
        self.budgets: tuple[Budget, ...] = tuple(budgets)
        names = [b.name for b in self.budgets]
        for b in self.budgets:
            if not isinstance(b, Budget):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(f"budgets must be Budget objects, got {type(b).__name__}")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"budget names must be unique; repeated: {', '.join(dupes)}")
        if unpriced not in ("deny", "allow"):
            raise ValueError(f"unpriced must be 'deny' or 'allow', got {unpriced!r}")
        if fail not in ("open", "closed"):
            raise ValueError(f"fail must be 'open' or 'closed', got {fail!r}")
        if store_timeout_s <= 0 or throttle_max_wait_s < 0:
            raise ValueError("store_timeout_s must be > 0 and throttle_max_wait_s >= 0")
        self.clock: Callable[[], int] = clock or time.time_ns
        self.store: BudgetStore = open_store(store, timeout_s=store_timeout_s, clock=self.clock)
        self.store_is_local = isinstance(self.store, MemoryBudgetStore)
        self.unpriced = unpriced
        self.fail = fail
        self.throttle_max_wait_s = throttle_max_wait_s
        self.min_output_tokens = min_output_tokens
        self._sleep = sleep or time.sleep
        self._asleep = asleep or asyncio.sleep
        self.alerts = AlertDispatcher(sinks, claim=self._claim)
        self._throttle = Throttle()
        self._lock = threading.Lock()
        self._plans: dict[tuple[object, ...], _Plan] = {}
        self._spans: list[WindowSpan | None] = [None] * len(self.budgets)
        self._health: dict[str, int] = {}
        self._overrun_total = _ZERO
        self._last_warning: dict[str, int] = {}
        keys: set[str] = set()
        for b in self.budgets:
            keys.update(b.scope)
            if b.per:
                keys.add(b.per)
        self._keys = tuple(sorted(keys))
        self._by_trace = any(b.window == "trace" for b in self.budgets)

    # ------------------------------------------------------------ matching

    def _plan(
        self, attributes: Mapping[str, object], trace_id: str | None, kind: str, name: str | None
    ) -> _Plan:
        values: list[object] = []
        for key in self._keys:
            value = attributes.get(key)
            if value is None:
                if key == "kind":
                    value = kind
                elif (key == "model" and kind == "llm") or (key == "tool" and kind == "tool"):
                    value = name
            values.append(value)
        cache_key = (*values, trace_id if self._by_trace else None)
        try:
            plan = self._plans.get(cache_key)
        except TypeError:  # an unhashable attribute value: match on its text
            values = [v if v is None else str(v) for v in values]
            cache_key = (*values, trace_id if self._by_trace else None)
            plan = self._plans.get(cache_key)
        if plan is not None:
            return plan
        merged = dict(zip(self._keys, values, strict=True))
        targets: list[_Target] = []
        prefix = self.store.prefix
        for index, budget in enumerate(self.budgets):
            if not budget.matches(merged):
                continue
            if budget.window == "trace":
                if not trace_id:
                    continue
                subject = trace_id
            elif budget.per is not None:
                subject = str(merged[budget.per])
            else:
                subject = "*"
            target = _Target(budget, index, subject, prefix)
            target.warn_units = tuple(
                (fraction, to_units(budget.limit * fraction)) for fraction in budget.warn_at
            )
            targets.append(target)
        result = _Plan(tuple(targets))
        with self._lock:
            if len(self._plans) >= _PLAN_CACHE_MAX:
                self._plans.clear()
            self._plans[cache_key] = result
        return result

    def _span(self, index: int, now: int) -> WindowSpan:
        span = self._spans[index]
        if span is None or not span.valid_at(now):
            span = window_at(self.budgets[index], now)
            self._spans[index] = span
        return span

    def _check(self, target: _Target, now: int) -> Check:
        span = self._span(target.index, now)
        check = target.check
        if check is not None and target.span is span:
            return check
        base = target.base
        budget = target.budget
        check = Check(
            spent_keys=tuple(f"{base}{w}:s" for w in span.spent_windows),
            reserved_key=f"{base}{span.reserved_window}:r",
            commit_key=f"{base}{span.key}:s",
            limit=to_units(budget.limit) if budget.enforces else -1,
            ttl_s=span.ttl_s(now),
        )
        target.span = span
        target.check = check
        return check

    # ------------------------------------------------------------ reserving

    def reserve(
        self,
        *,
        attributes: Mapping[str, object] | None = None,
        trace_id: str | None = None,
        amount: Decimal | None,
        kind: str = "llm",
        name: str | None = None,
    ) -> Reservation:
        """Hold ``amount`` against every matching budget, or refuse the call.

        Args:
            attributes: The call's attribution (``user_id``, ``team``, ...).
            trace_id: The task it belongs to (for ``window="trace"`` budgets).
            amount: The most the call can cost (USD); ``None`` when it could
                not be priced (the ``unpriced`` policy applies).
            kind: ``llm`` or ``tool`` (matchable as the ``kind`` attribute).
            name: Model or tool name (matchable as ``model`` / ``tool``).

        Returns:
            A :class:`Reservation` to settle or release.

        Raises:
            BudgetExceeded: Before anything runs, naming the budget, limit,
                spent, reserved and attempted amounts.
        """
        res, wait_ns = self._reserve(attributes, trace_id, amount, kind, name)
        if wait_ns:
            self._sleep(wait_ns / _NS)
        return res

    async def areserve(
        self,
        *,
        attributes: Mapping[str, object] | None = None,
        trace_id: str | None = None,
        amount: Decimal | None,
        kind: str = "llm",
        name: str | None = None,
    ) -> Reservation:
        """:meth:`reserve` for asyncio: a throttle wait awaits, never blocking the loop.

        A remote store is called from a worker thread, so a slow or dead store
        costs the loop nothing either. Cancelled while waiting, the money is
        released before ``CancelledError`` propagates.
        """
        if self.store_is_local or not self.budgets:
            res, wait_ns = self._reserve(attributes, trace_id, amount, kind, name)
        else:
            pending = asyncio.ensure_future(
                asyncio.to_thread(self._reserve, attributes, trace_id, amount, kind, name)
            )
            try:
                res, wait_ns = await asyncio.shield(pending)
            except asyncio.CancelledError:
                # The worker thread still completes the reservation: give it back.
                pending.add_done_callback(_release_when_done)
                raise
        if wait_ns:
            try:
                await self._asleep(wait_ns / _NS)
            except BaseException:
                res.release()
                raise
        return res

    def unreserved(
        self,
        *,
        attributes: Mapping[str, object] | None = None,
        trace_id: str | None = None,
        kind: str = "llm",
        name: str | None = None,
    ) -> Reservation:
        """A zero reservation for a call that runs whatever the budgets say.

        For frameworks that cannot stop a call from a callback (LlamaIndex
        swallows handler exceptions): the call was refused, runs anyway, and
        settling this commits its real cost, so the budget's spent — and every
        later decision — still sees the money. Nothing is checked or held.
        """
        if not self.budgets:
            return Reservation(None, (), 0, _ZERO, ())
        plan = self._plan(attributes or {}, trace_id, kind, name)
        if not plan.targets:
            return Reservation(None, (), 0, _ZERO, ())
        now = self.clock()
        checks = [self._check(t, now) for t in plan.targets]
        return Reservation(self, checks, 0, _ZERO, plan.names, enforced=False)

    def _reserve(
        self,
        attributes: Mapping[str, object] | None,
        trace_id: str | None,
        amount: Decimal | None,
        kind: str,
        name: str | None,
    ) -> tuple[Reservation, int]:
        if not self.budgets:
            return Reservation(None, (), 0, amount, ()), 0
        plan = self._plan(attributes or {}, trace_id, kind, name)
        targets = plan.targets
        if not targets:
            return Reservation(None, (), 0, amount, ()), 0
        now = self.clock()
        if now < plan.until:
            checks = plan.checks
        else:
            checks = [self._check(t, now) for t in targets]
            ends = [t.span.end_ns for t in targets if t.span is not None and t.span.end_ns]
            plan.checks = checks
            plan.until = min(ends) if ends else _FOREVER
        names = plan.names
        unpriced = False
        if amount is None:
            if self.unpriced == "deny" and any(t.budget.enforces for t in targets):
                self._count("unpriced_denied")
                first = next(t for t in targets if t.budget.enforces)
                raise BudgetExceeded(
                    f"budget {first.budget.name!r} refused a {kind} call"
                    f"{f' to {name!r}' if name else ''} that cannot be priced"
                    " (unpriced='deny'; price it in faremeter.toml or set unpriced='allow')",
                    budget=first.budget.name,
                    limit=first.budget.limit,
                    attempted=None,
                    scope_key=first.base + (first.span.key if first.span else ""),
                    reason="unpriced",
                )
            unpriced = True
            self._count("unpriced_allowed")
            self._warn_once(
                f"unpriced:{name}",
                f"faremeter: {kind} {name!r} could not be priced;"
                " allowed by unpriced='allow' (counted in budget health)",
            )
            units = 1  # one nano-dollar: it needs *some* money left, so a used-up budget stops it
        else:
            if amount < 0:
                raise ValueError(f"amount must be >= 0, got {amount}")
            units = to_units(amount)
        try:
            result = self.store.reserve(checks, units)
        except Exception as exc:
            return self._store_down(exc, targets, amount, names, kind, name), 0
        if result.failed >= 0:
            self._deny(targets[result.failed], result.totals[result.failed], amount, now)
        res = Reservation(self, checks, units, amount, names, unpriced=unpriced)
        wait_ns = 0
        for target, (spent, reserved) in zip(targets, result.totals, strict=True):
            warn = target.warn_units
            if warn and spent + reserved + units >= warn[0][1]:
                self._threshold(target, spent, reserved, units, now)
                if target.budget.action == "throttle":
                    wait_ns = max(
                        wait_ns, self._throttle_wait(res, target, spent, reserved, units, now)
                    )
        if wait_ns:
            self._count("throttled")
            res.waited_s = wait_ns / _NS
        return res, wait_ns

    def _store_down(
        self,
        exc: Exception,
        targets: Sequence[_Target],
        amount: Decimal | None,
        names: tuple[str, ...],
        kind: str,
        name: str | None,
    ) -> Reservation:
        self._count("store_failures")
        self._warn_once(
            "store",
            f"faremeter: budget store unavailable ({type(exc).__name__}: {exc});"
            f" fail={self.fail!r}",
        )
        if not isinstance(exc, StoreUnavailable):
            logger.debug("faremeter: unexpected budget store error", exc_info=exc)
        enforcing = [t for t in targets if t.budget.enforces]
        if self.fail == "closed" and enforcing:
            self._count("fail_closed_denials")
            first = enforcing[0]
            raise BudgetExceeded(
                f"budget {first.budget.name!r} refused a {kind} call"
                f"{f' to {name!r}' if name else ''}: the budget store is unavailable and"
                " fail='closed'",
                budget=first.budget.name,
                limit=first.budget.limit,
                attempted=amount,
                reason="store unavailable",
            ) from None
        self._count("fail_open_passes")
        return Reservation(None, (), 0, amount, names, enforced=False)

    def _deny(
        self, target: _Target, totals: tuple[int, int], amount: Decimal | None, now: int
    ) -> None:
        budget = target.budget
        spent, reserved = from_units(totals[0]), from_units(totals[1])
        available = max(budget.limit - spent - reserved, _ZERO)
        window = target.span.key if target.span else ""
        self._count("denials")
        self._alert(
            "budget.denied",
            target,
            window,
            now,
            f"budget {budget.name!r}{_who(target)} refused a call of ${amount or 0:f}:"
            f" spent ${spent:f} + in flight ${reserved:f} of ${budget.limit:f}",
            {
                "limit": budget.limit,
                "spent": spent,
                "reserved": reserved,
                "attempted": amount or _ZERO,
            },
            dedupe=None,
        )
        raise BudgetExceeded(
            budget=budget.name,
            limit=budget.limit,
            spent=spent,
            reserved=reserved,
            attempted=amount,
            available=available,
            partial=budget.action == "degrade",
            scope_key=f"{target.base}{window}",
        )

    def _threshold(self, target: _Target, spent: int, reserved: int, units: int, now: int) -> None:
        used = spent + reserved + units
        window = target.span.key if target.span else ""
        for fraction, threshold in target.warn_units:
            if used < threshold:
                break
            key = f"budget.threshold:{target.base}{window}:{fraction}"
            if self.alerts.seen(key):
                continue
            budget = target.budget
            self._alert(
                "budget.threshold",
                target,
                window,
                now,
                f"budget {budget.name!r}{_who(target)} passed {fraction:.0%} of"
                f" ${budget.limit:f}: spent ${from_units(spent):f}, in flight"
                f" ${from_units(reserved + units):f}",
                {
                    "limit": budget.limit,
                    "spent": from_units(spent),
                    "reserved": from_units(reserved + units),
                    "threshold": fraction,
                },
                dedupe=key,
            )

    def _throttle_wait(
        self, res: Reservation, target: _Target, spent: int, reserved: int, units: int, now: int
    ) -> int:
        budget = target.budget
        span = target.span
        check = target.check
        fraction = budget.throttle_at
        if span is None or check is None or fraction is None:
            return 0
        if spent + reserved + units < to_units(budget.limit * fraction):
            return 0
        window = budget.window
        left = check.limit - spent - reserved
        wait = self._throttle.claim(
            f"{target.base}{span.key}",
            now_ns=now,
            cost=units,
            left=left,
            window_end_ns=None if isinstance(window, dt.timedelta) else span.end_ns,
            rolling_ns=int(window.total_seconds() * _NS) if isinstance(window, dt.timedelta) else 0,
            max_wait_ns=int(self.throttle_max_wait_s * _NS),
        )
        if wait is None:
            res.release()
            self._count("throttle_denials")
            raise BudgetExceeded(
                f"budget {budget.name!r}{_who(target)} is past {fraction:.0%} and paces"
                f" calls to fit the window; the next slot is more than"
                f" {self.throttle_max_wait_s:g}s away",
                budget=budget.name,
                limit=budget.limit,
                spent=from_units(spent),
                reserved=from_units(reserved),
                attempted=res.amount,
                available=max(from_units(left), _ZERO),
                scope_key=f"{target.base}{span.key}",
                reason="throttled",
            )
        return wait

    # ------------------------------------------------------------ settling

    def _settle(
        self, res: Reservation, checks: Sequence[Check], units: int, actual: Decimal | None
    ) -> None:
        if actual is None:
            actual_units = units  # unknown cost: bill the estimate, never zero
            res.actual = res.amount
        else:
            if actual < 0:
                logger.warning("faremeter: negative actual cost %s settled as $0", actual)
                actual = _ZERO
            actual_units = to_units(actual)
            res.actual = actual
            if actual_units > units and res.amount is not None:
                over = actual - res.amount
                res.overrun = over
                with self._lock:
                    self._health["overruns"] = self._health.get("overruns", 0) + 1
                    self._overrun_total += over
                logger.info(
                    "faremeter: call cost $%s, $%s over its reservation (%s)",
                    actual,
                    over,
                    ", ".join(res.budgets),
                )
        try:
            self.store.settle(checks, units, actual_units)
        except Exception as exc:
            self._count("settle_failures")
            self._warn_once("settle", f"faremeter: budget store could not settle a call ({exc})")

    def _release(self, checks: Sequence[Check], units: int) -> None:
        try:
            self.store.settle(checks, units, 0)
        except Exception as exc:
            self._count("settle_failures")
            self._warn_once("settle", f"faremeter: budget store could not release a call ({exc})")

    # ------------------------------------------------------------ degrade

    def reserve_call(
        self,
        *,
        catalog: PriceCatalog,
        model: str,
        messages: Sequence[Message] | str,
        max_tokens: int | None = None,
        output_cap: int | None = None,
        attributes: Mapping[str, object] | None = None,
        trace_id: str | None = None,
        fit: Fitter | None = None,
    ) -> Reservation:
        """Estimate a model call, reserve it, and under ``degrade`` fit it to the money left.

        When a ``degrade`` budget cannot hold the call's worst case, the call
        is fitted to the money left under every matching budget: first a
        smaller ``max_tokens`` on the same model (at least
        ``min_output_tokens``), then whatever ``fit`` proposes (a cheaper
        model — the router's job). The returned reservation's ``model``,
        ``max_tokens`` and ``degraded`` (the reason) say what to send.

        Raises:
            BudgetExceeded: A ``deny``/``throttle`` budget refused, or nothing
                fits a ``degrade`` budget (``partial=True``: stop and return
                what the agent has).
        """
        call = _CallFit(self, catalog, model, messages, max_tokens, output_cap)
        amount = call.first_amount()
        try:
            return call.done(
                self.reserve(
                    attributes=attributes, trace_id=trace_id, amount=amount, kind="llm", name=model
                )
            )
        except BudgetExceeded as exc:
            call.refused(exc)
        for _ in range(3):
            step = call.next_step(self.headroom(attributes, trace_id, kind="llm", name=model), fit)
            if step is None:
                break
            try:
                return call.done(
                    self.reserve(
                        attributes=attributes,
                        trace_id=trace_id,
                        amount=step[2],
                        kind="llm",
                        name=step[0],
                    )
                )
            except BudgetExceeded as exc:
                call.refused(exc)
        raise call.exhausted()

    async def areserve_call(
        self,
        *,
        catalog: PriceCatalog,
        model: str,
        messages: Sequence[Message] | str,
        max_tokens: int | None = None,
        output_cap: int | None = None,
        attributes: Mapping[str, object] | None = None,
        trace_id: str | None = None,
        fit: Fitter | None = None,
    ) -> Reservation:
        """:meth:`reserve_call` for asyncio.

        Throttle waits are awaited and a remote store is called from a worker
        thread, so the event loop never blocks.
        """
        call = _CallFit(self, catalog, model, messages, max_tokens, output_cap)
        amount = call.first_amount()
        try:
            return call.done(
                await self.areserve(
                    attributes=attributes, trace_id=trace_id, amount=amount, kind="llm", name=model
                )
            )
        except BudgetExceeded as exc:
            call.refused(exc)
        for _ in range(3):
            if self.store_is_local:
                left = self.headroom(attributes, trace_id, kind="llm", name=model)
            else:
                left = await asyncio.to_thread(
                    self.headroom, attributes, trace_id, kind="llm", name=model
                )
            step = call.next_step(left, fit)
            if step is None:
                break
            try:
                return call.done(
                    await self.areserve(
                        attributes=attributes,
                        trace_id=trace_id,
                        amount=step[2],
                        kind="llm",
                        name=step[0],
                    )
                )
            except BudgetExceeded as exc:
                call.refused(exc)
        raise call.exhausted()

    def reserve_tool(
        self,
        *,
        catalog: PriceCatalog,
        name: str,
        calls: int = 1,
        units: int | Decimal | None = None,
        attributes: Mapping[str, object] | None = None,
        trace_id: str | None = None,
    ) -> Reservation:
        """Reserve a tool call at its configured price (before its body runs).

        A tool without a price is unpriced (the ``unpriced`` policy applies);
        a per-unit tool reserves ``units`` units (pass the most it can use).

        Raises:
            BudgetExceeded: The tool must not run.
        """
        amount = catalog.tool_cost(name, calls=calls, units=units).total
        return self.reserve(
            attributes=attributes, trace_id=trace_id, amount=amount, kind="tool", name=name
        )

    # ------------------------------------------------------------ reading

    def headroom(
        self,
        attributes: Mapping[str, object] | None = None,
        trace_id: str | None = None,
        *,
        kind: str = "llm",
        name: str | None = None,
    ) -> Decimal | None:
        """USD left under the tightest enforcing budget a call would match.

        ``None`` when no enforcing budget applies (or the store is down): the
        router can read it as "no budget pressure".
        """
        targets = [
            t
            for t in self._plan(attributes or {}, trace_id, kind, name).targets
            if t.budget.enforces
        ]
        if not targets:
            return None
        now = self.clock()
        checks = [self._check(t, now) for t in targets]
        try:
            totals = self.store.read(checks)
        except Exception as exc:
            self._count("store_failures")
            self._warn_once("store", f"faremeter: budget store unavailable ({exc})")
            return None
        return min(
            t.budget.limit - from_units(s) - from_units(r)
            for t, (s, r) in zip(targets, totals, strict=True)
        )

    def status(self) -> list[BudgetStatus]:
        """Every budget counter in its current window (one row per subject seen).

        Raises:
            StoreUnavailable: The store could not be read.
        """
        now = self.clock()
        prefix = self.store.prefix
        rows: list[BudgetStatus] = []
        for index, budget in enumerate(self.budgets):
            span = window_at(budget, now)
            head = f"{prefix}{budget.name}:"
            per_subject: dict[str, list[int]] = {}
            spent_windows = set(span.spent_windows)
            for key, value in self.store.scan(head).items():
                rest = key[len(head) :]
                try:
                    subject, window, kind = rest.rsplit(":", 2)
                except ValueError:
                    continue
                sums = per_subject.setdefault(subject, [0, 0])
                if kind == "s" and window in spent_windows:
                    sums[0] += value
                elif kind == "r" and window == span.reserved_window:
                    sums[1] += max(value, 0)
            if budget.per is None and budget.window != "trace":
                per_subject.setdefault("*", [0, 0])
            for subject, (spent, reserved) in sorted(per_subject.items()):
                if budget.window == "trace" and not spent and not reserved:
                    continue
                rows.append(self._status_row(index, budget, span, subject, spent, reserved, now))
        return rows

    def _status_row(
        self,
        index: int,
        budget: Budget,
        span: WindowSpan,
        subject: str,
        spent_u: int,
        reserved_u: int,
        now: int,
    ) -> BudgetStatus:
        del index
        spent, reserved = from_units(spent_u), from_units(reserved_u)
        projected: Decimal | None = None
        start = end = None
        if span.end_ns is not None and not span.rolling:
            start = _utc(span.start_ns)
            end = _utc(span.end_ns)
            elapsed = now - span.start_ns
            if elapsed > 0:
                rate = spent / elapsed
                projected = (spent + reserved + rate * (span.end_ns - now)).quantize(
                    Decimal("0.000001")
                )
        elif isinstance(budget.window, dt.timedelta):
            start = _utc(now - int(budget.window.total_seconds() * _NS))
            projected = spent + reserved
        return BudgetStatus(
            budget=budget.name,
            subject=None if subject == "*" else subject,
            action=budget.action,
            window=span.key if not span.rolling else _rolling_label(budget),
            window_start=start,
            window_end=end,
            limit=budget.limit,
            spent=spent,
            reserved=reserved,
            remaining=budget.limit - spent - reserved,
            projected=projected,
        )

    def health(self) -> BudgetHealth:
        """Counts of store failures, fail-open passes, unpriced calls, overruns..."""
        with self._lock:
            counts = dict(self._health)
            overrun_total = self._overrun_total
        kind = type(self.store).__name__.removesuffix("BudgetStore").lower() or "custom"
        return BudgetHealth(store=kind, overrun_total=overrun_total, **counts)

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()

    # ------------------------------------------------------------ helpers

    def _count(self, name: str) -> None:
        with self._lock:
            self._health[name] = self._health.get(name, 0) + 1

    def _warn_once(self, key: str, message: str) -> None:
        now = self.clock()
        last = self._last_warning.get(key)
        if last is not None and now - last < _WARN_EVERY_NS:
            return
        self._last_warning[key] = now
        logger.warning(message)

    def _claim(self, key: str, ttl_s: int) -> bool:
        return self.store.claim(key, ttl_s)

    def _alert(
        self,
        kind: str,
        target: _Target,
        window: str,
        now: int,
        message: str,
        amounts: Mapping[str, Decimal],
        *,
        dedupe: str | None,
    ) -> None:
        try:
            self.alerts.dispatch(
                Alert(
                    kind=kind,
                    message=message,
                    at=_utc(now),
                    budget=target.budget.name,
                    subject=None if target.subject == "*" else target.subject,
                    window=window,
                    amounts=amounts,
                    dedupe_key=dedupe or f"{kind}:{target.base}{window}",
                )
            )
        except Exception:
            logger.exception("faremeter: budget alert failed")


class _CallFit:
    """The state of fitting one model call to the money left (shared by sync and async)."""

    def __init__(
        self,
        manager: BudgetManager,
        catalog: PriceCatalog,
        model: str,
        messages: Sequence[Message] | str,
        max_tokens: int | None,
        output_cap: int | None,
    ) -> None:
        self.manager = manager
        self.catalog = catalog
        self.model = model
        self.messages = messages
        self.max_tokens = max_tokens
        self.output_cap = output_cap
        self.amount: Decimal | None = None
        self.error: BudgetExceeded | None = None
        self.step: tuple[str, int | None, Decimal, Decimal] | None = None
        self._tokens: tuple[int, int] | None = None

    def first_amount(self) -> Decimal | None:
        from faremeter.budgets.estimate import estimate_call_cost

        self.amount = estimate_call_cost(
            self.catalog, self.model, self.messages, self.max_tokens, output_cap=self.output_cap
        )
        return self.amount

    def done(self, res: Reservation) -> Reservation:
        step = self.step
        if step is None:
            res.model, res.max_tokens = self.model, self.max_tokens
            return res
        new_model, new_max, new_amount, available = step
        res.model, res.max_tokens = new_model, new_max
        budget = self.error.budget if self.error is not None else None
        res.degraded = (
            f"budget {budget!r} has ${available:f} left: {self.model}"
            f" max_tokens={self.max_tokens} (worst case ${self.amount or 0:f}) ->"
            f" {new_model} max_tokens={new_max} (${new_amount:f})"
        )
        self.manager._count("degraded")  # pyright: ignore[reportPrivateUsage]
        return res

    def refused(self, exc: BudgetExceeded) -> None:
        """Re-raise unless a degrade budget refused (then fitting may help)."""
        if not exc.partial or exc.available is None:
            raise exc
        self.error = exc

    def next_step(
        self, headroom: Decimal | None, fit: Fitter | None
    ) -> tuple[str, int | None, Decimal, Decimal] | None:
        """The next (model, max_tokens, amount, available) to try, or None."""
        from faremeter.budgets.estimate import (
            count_input_tokens,
            estimate_call_cost,
            fit_max_tokens,
        )

        error = self.error
        assert error is not None
        available = error.available or _ZERO
        # Fit under every matching budget at once, not only the one that
        # refused: a deny budget with less left must not refuse the refit.
        if headroom is not None:
            available = max(min(available, headroom), _ZERO)
        if self._tokens is None:
            self._tokens = count_input_tokens(self.model, self.messages)
        input_tokens, cache_write = self._tokens
        fitted = fit_max_tokens(
            self.catalog, self.model, input_tokens, available, cache_write_tokens=cache_write
        )
        choice: tuple[str, int | None] | None = None
        if fitted is not None and fitted >= self.manager.min_output_tokens:
            choice = (self.model, fitted)
        elif fit is not None:
            choice = fit(
                FitRequest(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    available=available,
                    input_tokens=input_tokens,
                    budget=error.budget or "",
                )
            )
        if choice is None:
            return None
        new_model, new_max = choice
        new_amount = estimate_call_cost(
            self.catalog, new_model, self.messages, new_max, output_cap=self.output_cap
        )
        if new_amount is None or new_amount > available:
            return None
        self.step = (new_model, new_max, new_amount, available)
        return self.step

    def exhausted(self) -> BudgetExceeded:
        error = self.error
        assert error is not None
        return BudgetExceeded(
            budget=error.budget,
            limit=error.limit,
            spent=error.spent,
            reserved=error.reserved,
            attempted=self.amount,
            available=error.available,
            partial=True,
            scope_key=error.scope_key,
            reason="no smaller call fits",
        )


def _release_when_done(future: asyncio.Future[tuple[Reservation, int]]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result()[0].release()


def _who(target: _Target) -> str:
    if target.subject == "*":
        return ""
    label = "trace" if target.budget.window == "trace" else target.budget.per
    return f" for {label}={target.subject}"


def _rolling_label(budget: Budget) -> str:
    window = budget.window
    assert isinstance(window, dt.timedelta)
    return f"rolling {window}"


def _utc(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / _NS, tz=dt.UTC)
