"""Optimisation suggestions computed from the ledger, each with evidence and dollars.

Every suggestion is derived from recorded spans only — no sampling, no
content — and says what it is based on (``evidence``) and what acting on it
would have saved over the window (``impact``). Checks:

* ``cheaper_model`` — a step's calls repriced on a cheaper model of the same
  family (what-if over the recorded usage);
* ``tool_cache`` — a tool with a low cache hit rate whose calls repeat an
  earlier call's arguments (``tool_args_hash``): raise the TTL or cache it;
* ``budget_hits`` — tasks stopped by a budget (``denied`` spans), with the
  money they spent before being stopped;
* ``prompt_cache`` — calls that repeat a prompt prefix (``prompt_prefix_hash``
  and ``prompt_prefix_tokens`` attributes) the provider's prompt cache would
  bill at the cache-read rate;
* ``retry_backoff`` — calls retried within a few milliseconds of a failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from faremeter.analytics.whatif import linear, what_if_groups, what_if_totals
from faremeter.cost import format_usd as money
from faremeter.errors import UnknownModelError
from faremeter.ledger import Ledger, UsageTotal
from faremeter.pricing import PriceCatalog
from faremeter.spans import SpanRecord, SpanStatus

__all__ = ["DEFAULT_CHEAPER", "Suggestion", "suggest"]

DEFAULT_CHEAPER: Mapping[str, str] = MappingProxyType(
    {
        "gpt-4o": "gpt-4o-mini",
        "gpt-4.1": "gpt-4.1-mini",
        "gpt-4.1-mini": "gpt-4.1-nano",
        "gpt-5": "gpt-5-mini",
        "gpt-5-mini": "gpt-5-nano",
        "o3": "o4-mini",
        "claude-sonnet-4-5": "claude-haiku-4-5",
        "claude-opus-4-1": "claude-sonnet-4-5",
        "gemini-2.5-pro": "gemini-2.5-flash",
        "gemini-2.5-flash": "gemini-2.5-flash-lite",
    }
)
"""Model -> the next cheaper model of its family (catalog ids); extend with ``cheaper=``."""

_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Window:
    since: datetime | None
    until: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Suggestion:
    """One thing to change, why, and what it is worth.

    Attributes:
        kind: ``cheaper_model``, ``tool_cache``, ``budget_hits``, ``prompt_cache``
            or ``retry_backoff``.
        subject: What it is about (a step, a tool, a workflow, a model).
        title: One sentence for people.
        impact: Dollars it would have saved over the window (for
            ``budget_hits``: the money spent by the tasks that were stopped).
        evidence: The recorded facts it rests on, as text.
    """

    kind: str
    subject: str | None
    title: str
    impact: Decimal
    evidence: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def suggest(
    ledger: Ledger,
    catalog: PriceCatalog,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
    cheaper: Mapping[str, str] | None = None,
    max_hit_rate: float = 0.5,
    retry_gap_ms: float = 100.0,
    min_impact: Decimal = Decimal(0),
    top_steps: int = 20,
    max_traces: int = 500,
) -> list[Suggestion]:
    """Every suggestion the ledger supports, largest impact first.

    Args:
        ledger: Where the spans are.
        catalog: Prices (``meter.catalog``) for the what-if repricing.
        since: Window start (aware).
        until: Window end (exclusive, aware).
        where: Attribute filter for every check.
        cheaper: Extra or replacement model -> cheaper model pairs.
        max_hit_rate: Tools at or above this cache hit rate are left alone.
        retry_gap_ms: A retry sooner than this after a failure has no backoff.
        min_impact: Drop suggestions worth less than this.
        top_steps: Reprice at most this many of the costliest (step, model) pairs.
        max_traces: Inspect at most this many traces for budget hits and retries.
    """
    window = _Window(since=since, until=until)
    base = dict(where or {})
    mapping = {**DEFAULT_CHEAPER, **(cheaper or {})}
    out: list[Suggestion] = []
    out += _cheaper_models(ledger, catalog, base, window, mapping, top_steps)
    out += _tool_cache(ledger, base, window, max_hit_rate)
    out += _budget_hits(ledger, base, window, max_traces)
    out += _prompt_cache(ledger, catalog, base, window)
    out += _retries(ledger, base, window, retry_gap_ms, max_traces)
    out = [s for s in out if s.impact >= min_impact]
    return sorted(out, key=lambda s: (-s.impact, s.kind, s.subject or ""))


def _cheaper_models(
    ledger: Ledger,
    catalog: PriceCatalog,
    base: dict[str, object],
    window: _Window,
    mapping: Mapping[str, str],
    top: int,
) -> list[Suggestion]:
    out: list[Suggestion] = []
    # Every step's calls summed per model (a few rows per step; the hourly rollup).
    by_pair: dict[tuple[str | None, str], list[UsageTotal]] = {}
    for g in ledger.usage_totals(
        by="step", where=base or None, since=window.since, until=window.until
    ):
        if g.model is not None:
            by_pair.setdefault((g.key, g.model), []).append(g)
    ranked = sorted(
        by_pair.items(),
        key=lambda kv: (-sum((g.cost for g in kv[1]), Decimal(0)), kv[0][0] or "", kv[0][1]),
    )
    for (step, model), groups in ranked[:top]:
        target = _cheaper_of(catalog, model, mapping)
        if target is None:
            continue
        tokens_in = sum(g.tokens["input_tokens"] for g in groups if g.tokens is not None)
        tokens_out = sum(g.tokens["output_tokens"] for g in groups if g.tokens is not None)
        if linear(catalog, target):
            w = what_if_totals(groups, catalog, model=target)
        else:
            exact = ledger.usage_groups(
                where={**base, "step": step, "model": model},
                since=window.since, until=window.until,
            )  # fmt: skip
            w = what_if_groups(exact, catalog, model=target)
        if w.calls == 0 or w.savings <= 0:
            continue
        label = step if step is not None else "(no step)"
        out.append(
            Suggestion(
                kind="cheaper_model",
                subject=label,
                title=(
                    f"{label}: {w.calls} {model} calls would have cost {money(w.what_if)} "
                    f"instead of {money(w.recorded)} on {target} "
                    f"({w.savings_ratio:.0%} less)"
                ),
                impact=w.savings,
                evidence=_ev(
                    step=label,
                    model=model,
                    target=target,
                    calls=w.calls,
                    recorded=money(w.recorded),
                    what_if=money(w.what_if),
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                ),
            )
        )
    return out


def _cheaper_of(catalog: PriceCatalog, model: str, mapping: Mapping[str, str]) -> str | None:
    target = mapping.get(model)
    if target is None:
        try:
            target = mapping.get(catalog.resolve(model))
        except UnknownModelError:
            return None
    if target is None or target not in catalog:
        return None
    return target


def _tool_cache(
    ledger: Ledger, base: dict[str, object], window: _Window, max_rate: float
) -> list[Suggestion]:
    calls: dict[str, list[int]] = {}
    # Calls and cache hits per tool: the hourly rollup (tool, status).
    for row in ledger.totals(
        "tool", "status", where=base or None, since=window.since, until=window.until
    ):
        tool, status = row.keys
        if tool is None:
            continue
        a = calls.setdefault(tool, [0, 0])
        a[0] += row.spans
        if status == SpanStatus.CACHED.value:
            a[1] += row.spans
    # Successful calls repeating an argument set: n identical calls hold n - 1 repeats.
    repeats: dict[str, list[Decimal | int]] = {}
    for g in ledger.repeated_tool_calls(where=base or None, since=window.since,
                                        until=window.until):  # fmt: skip
        r = repeats.setdefault(g.tool, [0, Decimal(0)])
        r[0] += g.argument_sets * (g.calls - 1)
        r[1] += g.cost * (g.calls - 1) / g.calls
    out: list[Suggestion] = []
    for tool, (repeated, wasted) in repeats.items():
        total, hits = calls.get(tool, [0, 0])
        rate = hits / total if total else 0.0
        if rate >= max_rate:
            continue
        out.append(
            Suggestion(
                kind="tool_cache",
                subject=tool,
                title=(
                    f"{tool}: cache hit rate {rate:.0%}; {repeated} of {total} calls repeated "
                    f"an earlier call's arguments — cache it or raise the TTL "
                    f"(would have saved {money(Decimal(wasted))})"
                ),
                impact=Decimal(wasted),
                evidence=_ev(
                    tool=tool,
                    calls=total,
                    cache_hits=hits,
                    hit_rate=f"{rate:.1%}",
                    repeated_calls=repeated,
                    repeated_cost=money(Decimal(wasted)),
                ),
            )
        )
    return out


def _budget_hits(
    ledger: Ledger, base: dict[str, object], window: _Window, cap: int
) -> list[Suggestion]:
    denied = {**base, "status": SpanStatus.DENIED.value}
    since, until = window.since, window.until
    # Tasks stopped per workflow (distinct traces), through the index of spans
    # that did not end "ok"; then the first ``cap`` of each group and their totals.
    groups = ledger.group_by("workflow", where=denied, since=since, until=until)
    picked = {
        row.keys[0]: ledger.trace_ids_with(
            where={**denied, "workflow": row.keys[0]}, since=since, until=until, limit=cap
        )
        for row in groups
    }
    wanted = sorted({tid for ids in picked.values() for tid in ids})
    totals = {t.trace_id: t.cost for t in ledger.traces(wanted)}
    out: list[Suggestion] = []
    for row in sorted(groups, key=lambda r: _group_name(r.keys[0])):
        group = _group_name(row.keys[0])
        ids = picked[row.keys[0]]
        spent = sum((totals.get(tid, Decimal(0)) for tid in ids), Decimal(0))
        note = "" if len(ids) == row.traces else f" (first {len(ids)} inspected)"
        out.append(
            Suggestion(
                kind="budget_hits",
                subject=group,
                title=(
                    f"{group}: {row.traces} tasks hit their budget after spending "
                    f"{money(spent)}{note} — raise the cap, degrade to a cheaper tier "
                    "earlier, or cut the work per task"
                ),
                impact=spent,
                evidence=_ev(workflow=group, traces=row.traces, spent=money(spent)),
            )
        )
    return out


def _group_name(workflow: str | None) -> str:
    return "(no workflow)" if workflow is None else workflow


def _prompt_cache(
    ledger: Ledger,
    catalog: PriceCatalog,
    base: dict[str, object],
    window: _Window,
) -> list[Suggestion]:
    acc: dict[str, list[Decimal | int]] = {}
    # Prefixes sent more than once: the prompt-prefix rollup over the whole
    # ledger, or the window's model calls.
    for group in ledger.repeated_prompt_prefixes(
        where=base or None, since=window.since, until=window.until
    ):
        model, tokens_text, calls = group.model, group.prefix_tokens, group.calls
        try:
            tokens = int(tokens_text)
            rates = catalog.get(model).rates_for(tokens)
        except (ValueError, UnknownModelError):
            continue
        per_token = (rates["input"] - rates["cache_read"]) / _MTOK
        if per_token <= 0:
            continue
        a = acc.setdefault(model, [0, 0, Decimal(0)])
        a[0] += calls - 1
        a[1] += (calls - 1) * tokens
        a[2] += (calls - 1) * tokens * per_token
    return [
        Suggestion(
            kind="prompt_cache",
            subject=model,
            title=(
                f"{model}: {int(n)} calls repeated a {int(tok) // max(int(n), 1):,}-token prompt "
                f"prefix; with the provider's prompt cache those {int(tok):,} tokens bill at "
                f"the cache-read rate (would have saved {money(Decimal(saved))})"
            ),
            impact=Decimal(saved),
            evidence=_ev(
                model=model,
                repeated_calls=n,
                repeated_prefix_tokens=tok,
                saved=money(Decimal(saved)),
            ),
        )
        for model, (n, tok, saved) in acc.items()
    ]


def _retries(
    ledger: Ledger,
    base: dict[str, object],
    window: _Window,
    gap_ms: float,
    cap: int,
) -> list[Suggestion]:
    failed = {**base, "status": SpanStatus.ERROR.value}
    traces = ledger.trace_ids_with(where=failed, since=window.since, until=window.until, limit=cap)
    gap_ns = int(gap_ms * 1e6)
    acc: dict[str, list[Decimal | int]] = {}
    by_trace = ledger.spans_of_traces(traces)
    for tid in traces:
        spans = by_trace.get(tid, [])
        for i, s in enumerate(spans):
            if s.status is not SpanStatus.ERROR:
                continue
            retry = _next_attempt(s, spans[i + 1 :])
            if retry is None or retry.start_ns - s.end_ns >= gap_ns:
                continue
            a = acc.setdefault(s.name, [0, Decimal(0)])
            a[0] += 1
            if retry.status is SpanStatus.ERROR:
                a[1] += retry.cost.total or Decimal(0)
    return [
        Suggestion(
            kind="retry_backoff",
            subject=name,
            title=(
                f"{name}: {int(n)} retries started within {gap_ms:g} ms of a failure — "
                "retry with exponential backoff and jitter (failed quick retries cost "
                f"{money(Decimal(cost))})"
            ),
            impact=Decimal(cost),
            evidence=_ev(name=name, quick_retries=n, failed_retry_cost=money(Decimal(cost))),
        )
        for name, (n, cost) in acc.items()
    ]


def _next_attempt(failed: SpanRecord, later: Sequence[SpanRecord]) -> SpanRecord | None:
    for s in later:
        same = s.kind == failed.kind and s.name == failed.name and s.model == failed.model
        if same and s.start_ns >= failed.end_ns:
            return s
    return None


def _ev(**facts: object) -> Mapping[str, str]:
    return MappingProxyType({k: str(v) for k, v in facts.items()})
