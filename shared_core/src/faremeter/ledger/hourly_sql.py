"""SQL for the hourly rollup and the tool-arguments rollup, for SQLite and PostgreSQL.

:class:`HourlySql` writes the statements; :class:`RollupQueries` (the SQL
stores' query half) runs them. A query over a window reads the rollup for the
whole hours inside it and the spans for the partial hours at its ends (an
indexed range of at most two hours), and adds the two; a query the rollup
cannot answer (:func:`~faremeter.ledger.hourly.serves`) reads the spans with
the same aggregate. Money and usage stay integers until the very end, so the
answer is exact either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from faremeter.ledger.codec import to_pico
from faremeter.ledger.filters import AttrRef, QueryFilter
from faremeter.ledger.hourly import (
    ARGS_HASH,
    COUNTS,
    DIMS,
    HAS_USAGE,
    HOUR_NS,
    PREFIX_HASH,
    PREFIX_TOKENS,
    PRICED,
    ROLLUP_ATTRIBUTES,
    SUMS,
    Grouped,
    add_into,
    column_of,
    cost_split_of,
    prefix_groups,
    repeat_groups,
    serves,
    time_buckets_of,
    total_rows_of,
    usage_totals_of,
)
from faremeter.ledger.memory import USAGE_REST, ns_to_datetime
from faremeter.ledger.results import (
    CostSplit,
    OutlierTrace,
    PercentileRow,
    PrefixGroup,
    RepeatGroup,
    TimeBucket,
    TotalRow,
    UsageTotal,
)
from faremeter.ledger.schema import Dialect, Names
from faremeter.ledger.sqlbuild import Sql, SqlQueries
from faremeter.ledger.trace_ranks import indexed, indexed_outliers, indexed_percentiles

__all__ = [
    "HourlySql",
    "RollupQueries",
    "backfill_select",
    "prefixes_backfill",
    "span_groups",
    "tool_args_backfill",
]

Query = tuple[str, list[Any]]

_FLAG_SQL = {
    PRICED: "CASE WHEN cost_pico IS NULL THEN 0 ELSE 1 END",
    HAS_USAGE: "CASE WHEN usage IS NULL THEN 0 ELSE 1 END",
}
_STAMP = "route.baseline_cost"
_VECTOR_SQL = (
    "SUM(spans)",
    "SUM(CASE WHEN priced = 0 THEN spans ELSE 0 END)",
    "SUM(cost_pico)",
    "SUM(saved_pico)",
    *(f"SUM({c})" for c in COUNTS),
)
_OTHER_COUNTS = COUNTS[2:]
_SAVED = 3
"""Index of ``saved_pico`` in :data:`~faremeter.ledger.hourly.VECTOR`."""
_TOKENS_IN_OUT = 6
"""Sums up to input and output tokens; the usage counts after them need the usage text."""
_SPAN_SUMS = (
    "COUNT(*)",
    "SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)",
    "SUM(cost_pico)",
    "SUM(input_tokens)",
    "SUM(output_tokens)",
)


class HourlySql:
    """Statement builder for the rollup tables of one store."""

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self.d: Dialect = sql.d
        self.n: Names = sql.n
        cols = ("bucket_ns", "dkey", *DIMS, *SUMS)
        sets = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in SUMS)
        self.upsert_hourly = (
            f"INSERT INTO {self.n.hourly} AS t ({', '.join(cols)})"
            f" VALUES ({', '.join([self.d.ph] * len(cols))})"
            f" ON CONFLICT (bucket_ns, dkey) DO UPDATE SET {sets}"
        )
        self.hourly_width = len(cols)
        self.upsert_prefixes = (
            f"INSERT INTO {self.n.prompt_prefixes} AS t (model, prefix_hash, prefix_tokens, calls)"
            f" VALUES ({', '.join([self.d.ph] * 4)})"
            " ON CONFLICT (model, prefix_hash, prefix_tokens)"
            " DO UPDATE SET calls = t.calls + excluded.calls"
        )
        self.upsert_tool_args = (
            f"INSERT INTO {self.n.tool_args} AS t (tool, args, calls, cost_pico)"
            f" VALUES ({', '.join([self.d.ph] * 4)})"
            " ON CONFLICT (tool, args) DO UPDATE SET calls = t.calls + excluded.calls,"
            " cost_pico = t.cost_pico + excluded.cost_pico"
        )

    def many(self, upsert: str, rows: int) -> str:
        """``upsert`` with ``rows`` rows in its ``VALUES`` (multi-row statements)."""
        head, tail = upsert.split(" VALUES ", 1)
        one, rest = tail.split(" ON CONFLICT ", 1)
        return f"{head} VALUES {', '.join([one] * rows)} ON CONFLICT {rest}"

    # -- reading the rollup ------------------------------------------------------

    def rollup_query(
        self,
        keys: Sequence[AttrRef],
        width_ns: int | None,
        flt: QueryFilter,
        lo: int | None,
        hi: int | None,
        sums: int = len(_VECTOR_SQL),
    ) -> Query:
        """The first ``sums`` of :data:`VECTOR` over the rollup's hours in ``[lo, hi)``.

        Grouped by ``keys`` (and bucket). Reading only the sums a query needs
        keeps a month of rollup rows cheap to add up.
        """
        ph = self.d.ph
        params: list[Any] = []
        cols: list[str] = []
        if width_ns is not None:
            cols.append(f"(bucket_ns / {ph}) * {ph}")
            params += [width_ns, width_ns]
        for k in keys:
            column = column_of(k)
            assert column is not None
            cols.append(column)
        conds: list[str] = []
        for cond, value in (("bucket_ns >= ", lo), ("bucket_ns < ", hi), ("kind = ", flt.kind)):
            if value is not None:
                conds.append(f"{cond}{ph}")
                params.append(value)
        for attr, value in flt.where:
            column = column_of(attr)
            if column is None:  # a presence-only attribute, filtered as "not set"
                conds.append("stamped = 0")
            elif value is None:
                conds.append(f"{column} IS NULL")
            else:
                conds.append(f"{column} = {ph}")
                params.append(value)
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(cols)))}" if cols else ""
        select = ", ".join([*cols, *_VECTOR_SQL[:sums]])
        return f"SELECT {select} FROM {self.n.hourly}{where}{group}", params

    def span_query(
        self,
        keys: Sequence[AttrRef],
        width_ns: int | None,
        flt: QueryFilter,
        sums: int = len(_VECTOR_SQL),
    ) -> Query:
        """The same sums straight from the spans, grouped further by ``saved`` and usage text.

        ``saved`` is exact decimal text and the usage counts other than input
        and output live in the usage JSON; both are nearly always one of a
        few values, so grouping by them keeps the rows few while Python turns
        them into integers (:func:`span_groups`). A query that needs neither
        (``sums`` of 3: spend only; 6: no usage counts) groups by a constant
        ``NULL`` in their place, which costs nothing.
        """
        ph = self.d.ph
        params: list[Any] = []
        cols: list[str] = []
        if width_ns is not None:
            cols.append(f"(start_ns / {ph}) * {ph}")
            params += [width_ns, width_ns]
        for k in keys:
            flag = _FLAG_SQL.get(k)
            cols.append(flag if flag is not None else self.sql.span_expr(k, params))
        where = self.sql.where_spans(flt, params)
        find = "instr(usage, " if self.d.name == "sqlite" else "strpos(usage, "
        saved = "saved" if sums > _SAVED else "NULL"
        rest = f"substr(usage, {find}'{USAGE_REST}'))" if sums > _TOKENS_IN_OUT else "NULL"
        select = ", ".join([*cols, saved, rest, *_SPAN_SUMS])
        group = ", ".join(str(i + 1) for i in range(len(cols) + 2))
        return f"SELECT {select} FROM {self.n.spans}{where} GROUP BY {group}", params

    # -- tool arguments ------------------------------------------------------------

    def repeats_rollup(self) -> Query:
        """Repeated argument sets per tool and repeat count, from the rollup."""
        return (
            f"SELECT tool, calls, COUNT(*), SUM(cost_pico) FROM {self.n.tool_args}"
            " WHERE calls >= 2 GROUP BY tool, calls",
            [],
        )

    def repeats_scan(self, flt: QueryFilter) -> Query:
        """The same from the spans of a window (and filter)."""
        p = self.d.custom_param(ARGS_HASH)
        args = self.d.custom_attr("attrs_str")
        params: list[Any] = [p, p]
        extra = ["kind = 'tool'", "status = 'ok'", f"{args} IS NOT NULL"]
        where = self.sql.where_spans(replace(flt, kind=None), params, extra)
        inner = (
            f"SELECT name AS tool, {args} AS a, COUNT(*) AS n, COALESCE(SUM(cost_pico), 0) AS c"
            f" FROM {self.n.spans}{where} GROUP BY 1, 2"
        )
        sql = f"SELECT tool, n, COUNT(*), SUM(c) FROM ({inner}) g WHERE n >= 2 GROUP BY 1, 2"
        return sql, params

    def prefixes_rollup(self) -> Query:
        """Prompt prefixes sent more than once, from the rollup."""
        return (
            f"SELECT model, prefix_hash, prefix_tokens, calls FROM {self.n.prompt_prefixes}"
            " WHERE calls >= 2",
            [],
        )

    def prefixes_scan(self, flt: QueryFilter) -> Query:
        """The same from the model calls of a window (and filter)."""
        attr = self.d.custom_attr("attrs_str")  # read twice: the digest, then the tokens
        ph, pt = self.d.custom_param(PREFIX_HASH), self.d.custom_param(PREFIX_TOKENS)
        params: list[Any] = [ph, pt, ph, pt]
        extra = ["kind = 'llm'", "model IS NOT NULL", f"{attr} IS NOT NULL", f"{attr} IS NOT NULL"]
        where = self.sql.where_spans(replace(flt, kind=None), params, extra)
        sql = (
            f"SELECT model, {attr}, {attr}, COUNT(*) FROM {self.n.spans}{where}"
            " GROUP BY 1, 2, 3 HAVING COUNT(*) >= 2"
        )
        return sql, params

    def span_range(self) -> Query:
        """Earliest and latest span start: two index lookups.

        Two subqueries, because SQLite only turns a lone ``MIN`` or ``MAX``
        into an index lookup; both in one ``SELECT`` scan the table.
        """
        t = self.n.spans
        return f"SELECT (SELECT MIN(start_ns) FROM {t}), (SELECT MAX(start_ns) FROM {t})", []


def backfill_select(d: Dialect, n: Names) -> Query:
    """Rollup sums of every stored span, grouped in SQL (the backfill).

    Rows are ``(hour, *DIMS, saved, usage rest, count, unpriced, cost,
    input, output)``: :func:`span_groups` with ``1 + len(DIMS)`` key columns
    turns them into sums.
    """
    params: list[Any] = [HOUR_NS, HOUR_NS]

    def custom(name: str) -> str:
        params.append(d.custom_param(name))
        return d.custom_attr("attrs_str")

    cols = [
        f"(start_ns / {d.ph}) * {d.ph}",
        "kind",
        "status",
        "model",
        "provider",
        "CASE WHEN kind = 'tool' THEN name END",
    ]
    for attr in ROLLUP_ATTRIBUTES:
        cols.append(attr if attr == "step" else custom(attr))
    cols.append(f"CASE WHEN {custom(_STAMP)} IS NULL THEN 0 ELSE 1 END")
    cols += [_FLAG_SQL[PRICED], _FLAG_SQL[HAS_USAGE]]
    find = "instr(usage, " if d.name == "sqlite" else "strpos(usage, "
    select = ", ".join([*cols, "saved", f"substr(usage, {find}'{USAGE_REST}'))", *_SPAN_SUMS])
    group = ", ".join(str(i + 1) for i in range(len(cols) + 2))
    return f"SELECT {select} FROM {n.spans} GROUP BY {group}", params


def tool_args_backfill(d: Dialect, n: Names) -> Query:
    """Fill the tool-arguments rollup from stored spans, in SQL."""
    args = d.custom_attr("attrs_str")
    p = d.custom_param(ARGS_HASH)
    return (
        f"INSERT INTO {n.tool_args} (tool, args, calls, cost_pico)"
        f" SELECT name, {args}, COUNT(*), COALESCE(SUM(cost_pico), 0) FROM {n.spans}"
        f" WHERE kind = 'tool' AND status = 'ok' AND {args} IS NOT NULL GROUP BY 1, 2",
        [p, p],
    )


def prefixes_backfill(d: Dialect, n: Names) -> Query:
    """Fill the prompt-prefix rollup from stored spans, in SQL."""
    attr = d.custom_attr("attrs_str")
    ph, pt = d.custom_param(PREFIX_HASH), d.custom_param(PREFIX_TOKENS)
    return (
        f"INSERT INTO {n.prompt_prefixes} (model, prefix_hash, prefix_tokens, calls)"
        f" SELECT model, {attr}, {attr}, COUNT(*) FROM {n.spans}"
        f" WHERE kind = 'llm' AND model IS NOT NULL AND {attr} IS NOT NULL AND {attr} IS NOT NULL"
        " GROUP BY 1, 2, 3",
        [ph, pt, ph, pt],
    )


def span_groups(
    rows: Sequence[Sequence[Any]], width: int, acc: Grouped, sums: int = len(_VECTOR_SQL)
) -> None:
    """Add :meth:`HourlySql.span_query` rows (``width`` key columns) into ``acc``.

    Only the first ``sums`` of :data:`~faremeter.ledger.hourly.VECTOR` are kept.
    """
    for r in rows:
        saved, rest, n, unpriced, pico, tin, tout = r[width:]
        n = int(n)
        vec = [n, int(unpriced or 0), int(pico or 0), 0, int(tin or 0), int(tout or 0)]
        if saved is not None:
            vec[3] = to_pico(_decimal(saved)) * n
        if rest is None:
            vec.extend([0] * len(_OTHER_COUNTS))
        else:
            text = str(rest)
            counts: dict[str, Any] = json.loads("{" + text[1:] if text.startswith(",") else text)
            vec.extend(_count(counts.get(k)) * n for k in _OTHER_COUNTS)
        add_into(acc, tuple(r[:width]), vec[:sums])


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _count(value: Any) -> int:
    return value if type(value) is int else 0


_KIND = AttrRef("field", "kind")
_MODEL = AttrRef("field", "model")
_STATUS = AttrRef("field", "status")
_TOOL = AttrRef("field", "tool")
_MONEY = 3
"""Spans, unpriced spans and cost: what a time series or cost split reads."""
_TOTALS = 6
"""Those, ``saved`` and input/output tokens: what ``totals`` reads."""


class RollupQueries(SqlQueries):
    """The SQL stores' queries, answered from the rollups and their indexes when they can.

    Additive queries read the hourly rollup (:meth:`grouped`); distributions
    of whole traces walk the trace-total index (:mod:`faremeter.ledger.trace_ranks`).
    Everything else, and anything they cannot answer, is :class:`SqlQueries`.
    """

    hourly: HourlySql

    def grouped(
        self,
        keys: Sequence[AttrRef],
        width_ns: int | None,
        flt: QueryFilter,
        sums: int = len(_VECTOR_SQL),
    ) -> Grouped:
        """The first ``sums`` of :data:`~faremeter.ledger.hourly.VECTOR` per ``(bucket?, *keys)``.

        Whole hours of the window come from the rollup, the partial hours at
        its ends from the spans; queries the rollup cannot answer read the spans.
        """
        acc: Grouped = {}
        width = len(keys) + (width_ns is not None)
        since, until = flt.since_ns, flt.until_ns
        lo = None if since is None else -(-since // HOUR_NS) * HOUR_NS
        hi = None if until is None else (until // HOUR_NS) * HOUR_NS
        whole = lo is None or hi is None or lo < hi
        if not serves(keys, width_ns, flt) or not whole:
            rows = self._query(*self.hourly.span_query(keys, width_ns, flt, sums))
            span_groups(rows, width, acc, sums)
            return acc
        for r in self._query(*self.hourly.rollup_query(keys, width_ns, flt, lo, hi, sums)):
            if r[width]:  # an ungrouped sum over no rows is one row of NULLs
                add_into(acc, tuple(r[:width]), r[width:])
        edges: list[QueryFilter] = []
        if since is not None and lo is not None and since < lo:
            edges.append(replace(flt, until_ns=lo))
        if until is not None and hi is not None and hi < until:
            edges.append(replace(flt, since_ns=hi))
        for edge in edges:
            rows = self._query(*self.hourly.span_query(keys, width_ns, edge, sums))
            span_groups(rows, width, acc, sums)
        return acc

    def repeated_tool_calls(self, flt: QueryFilter) -> list[RepeatGroup]:
        """Repeated successful tool calls per tool and repeat count."""
        if flt.kind not in (None, "tool"):
            return []
        if not flt.where and flt.trace_id is None and self._covers_everything(flt):
            return repeat_groups(self._query(*self.hourly.repeats_rollup()))
        return repeat_groups(self._query(*self.hourly.repeats_scan(flt)))

    def repeated_prompt_prefixes(self, flt: QueryFilter) -> list[PrefixGroup]:
        """Prompt prefixes sent by more than one model call."""
        if flt.kind not in (None, "llm"):
            return []
        if not flt.where and flt.trace_id is None and self._covers_everything(flt):
            return prefix_groups(self._query(*self.hourly.prefixes_rollup()))
        return prefix_groups(self._query(*self.hourly.prefixes_scan(flt)))

    def _covers_everything(self, flt: QueryFilter) -> bool:
        """Whether the window holds every stored span (so the all-time rollup answers)."""
        if flt.since_ns is None and flt.until_ns is None:
            return True
        ((first, last),) = self._query(*self.hourly.span_range())
        if first is None:
            return True
        low_ok = flt.since_ns is None or flt.since_ns <= int(first)
        high_ok = flt.until_ns is None or flt.until_ns > int(last)
        return low_ok and high_ok

    # -- the ledger queries the rollup answers -----------------------------------

    def time_series(
        self, width_ns: int, attr: AttrRef | None, flt: QueryFilter
    ) -> list[TimeBucket]:
        """Spend per bucket: whole hours from the rollup when it keys on ``attr``."""
        keys = [] if attr is None else [attr]
        if not serves(keys, width_ns, flt):
            return super().time_series(width_ns, attr, flt)
        grouped = self.grouped(keys, width_ns, flt, _MONEY)
        if attr is None:
            grouped = {(b, None): v for (b,), v in grouped.items()}
        return time_buckets_of(grouped, ns_to_datetime)

    def cost_split(self, flt: QueryFilter) -> CostSplit:
        """LLM vs tool vs other, from the rollup when the filter allows."""
        if not serves([_KIND], None, flt):
            return super().cost_split(flt)
        return cost_split_of(self.grouped([_KIND], None, flt, _MONEY))

    def usage_totals(self, attr: AttrRef | None, flt: QueryFilter) -> list[UsageTotal]:
        """Summed usage per (attribute, model, status, priced, with usage or not)."""
        keys = [_MODEL, _STATUS, PRICED, HAS_USAGE]
        if attr is None:
            grouped = {(None, *k): v for k, v in self.grouped(keys, None, flt).items()}
        else:
            grouped = self.grouped([attr, *keys], None, flt)
        return usage_totals_of(grouped)

    def totals(self, attrs: Sequence[AttrRef], flt: QueryFilter) -> list[TotalRow]:
        """Additive totals per combination of ``attrs`` (naming ``tool`` keeps tool spans)."""
        if _TOOL in attrs:
            if flt.kind not in (None, "tool"):
                return []
            flt = replace(flt, kind="tool")
        return total_rows_of(self.grouped(attrs, None, flt, _TOTALS))

    # -- distributions of whole traces -------------------------------------------

    def percentiles(
        self, attr: AttrRef | None, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Quantiles per group: index walks when an index orders the totals, else ranked."""
        if indexed(attr, flt):
            return indexed_percentiles(self._query, self.sql, attr, quantiles, flt)
        return super().percentiles(attr, quantiles, flt)

    def outliers(
        self, attr: AttrRef | None, num: int, den: int, flt: QueryFilter, limit: int
    ) -> list[OutlierTrace]:
        """Traces above the outlier rule: index walks and ranges when possible, else ranked."""
        if indexed(attr, flt):
            return indexed_outliers(self._query, self.sql, attr, num, den, flt, limit)
        return super().outliers(attr, num, den, flt, limit)
