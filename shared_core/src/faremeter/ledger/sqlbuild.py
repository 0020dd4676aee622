"""SQL for the ledger's queries, written once for SQLite and PostgreSQL.

Only whitelisted column names are ever formatted into statements; custom
attribute keys and every value are bound parameters. Grouping uses ordinal
``GROUP BY 1`` so an expression with a bound key (``attrs_str ->> %s``)
needs no repetition. Sorting of the (few) result rows happens in Python in
:class:`~faremeter.ledger.core.Ledger`, so NULL ordering differences between
the engines never show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from faremeter.ledger.codec import SPAN_COLUMNS, TRACE_COLUMNS, decode_span, from_pico
from faremeter.ledger.filters import PROMOTED, AttrRef, QueryFilter
from faremeter.ledger.memory import ns_to_datetime
from faremeter.ledger.results import CostRow, CostSplit, PercentileRow, TimeBucket, TopTrace
from faremeter.ledger.schema import Dialect, Names
from faremeter.spans import SpanRecord

__all__ = ["Sql", "SqlQueries"]

_FIELD_SQL = {
    "model": "model",
    "kind": "kind",
    "status": "status",
    "provider": "provider",
    "tool": "CASE WHEN kind = 'tool' THEN name END",
}
_PROMOTED = frozenset(PROMOTED)
_SPAN_SELECT = ", ".join(SPAN_COLUMNS)

Query = tuple[str, list[Any]]


class Sql:
    """Statement builder bound to one dialect and one set of table names."""

    def __init__(self, dialect: Dialect, names: Names) -> None:
        self.d = dialect
        self.n = names
        ph = dialect.ph
        cols = ", ".join(SPAN_COLUMNS)
        self.insert_span = (
            f"INSERT INTO {names.spans} ({cols}) VALUES ({', '.join([ph] * len(SPAN_COLUMNS))})"
            " ON CONFLICT (span_id) DO NOTHING"
        )
        self.upsert_trace = self._upsert_trace()
        self._inserts: dict[tuple[int, ...], str] = {}

    def insert_span_columns(self, keep: tuple[int, ...], rows: int = 1) -> str:
        """:attr:`insert_span` for ``rows`` rows, naming only the columns at ``keep``.

        ``keep`` holds :data:`SPAN_COLUMNS` indexes; ``rows`` > 1 gives a
        multi-row ``VALUES``. Columns left out are stored as NULL, so a batch whose rows are all
        NULL in a column need not bind that column row by row.
        """
        key = (*keep, -rows)
        sql = self._inserts.get(key)
        if sql is None:
            ph = self.d.ph
            cols = ", ".join(SPAN_COLUMNS[i] for i in keep)
            one = f"({', '.join([ph] * len(keep))})"
            sql = (
                f"INSERT INTO {self.n.spans} ({cols}) VALUES {', '.join([one] * rows)}"
                " ON CONFLICT (span_id) DO NOTHING"
            )
            if len(self._inserts) < 256:
                self._inserts[key] = sql
        return sql

    def upsert_trace_rows(self, rows: int) -> str:
        """:attr:`upsert_trace` for ``rows`` rows per statement (distinct trace ids)."""
        one = f"({', '.join([self.d.ph] * len(TRACE_COLUMNS))})"
        head, tail = self.upsert_trace.split(f" VALUES {one}", 1)
        return f"{head} VALUES {', '.join([one] * rows)}{tail}"

    # -- writes ------------------------------------------------------------

    def _upsert_trace(self) -> str:
        d, n = self.d, self.n
        cols = ", ".join(TRACE_COLUMNS)
        values = ", ".join([d.ph] * len(TRACE_COLUMNS))
        newer = (
            "excluded.root_span_id IS NOT NULL AND (t.root_span_id IS NULL"
            " OR excluded.root_start_ns < t.root_start_ns"
            " OR (excluded.root_start_ns = t.root_start_ns"
            " AND excluded.root_span_id < t.root_span_id))"
        )
        root_cols = ["root_span_id", "root_start_ns", "root_name", *PROMOTED, "attrs_str"]
        sets = [
            "spans = t.spans + excluded.spans",
            "unpriced = t.unpriced + excluded.unpriced",
            "total_pico = t.total_pico + excluded.total_pico",
            f"started_ns = {d.least}(t.started_ns, excluded.started_ns)",
            f"ended_ns = {d.greatest}(t.ended_ns, excluded.ended_ns)",
            *(f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE t.{c} END" for c in root_cols),
        ]
        return (
            f"INSERT INTO {n.traces} AS t ({cols}) VALUES ({values})"
            f" ON CONFLICT (trace_id) DO UPDATE SET {', '.join(sets)}"
        )

    # -- filters -----------------------------------------------------------

    def span_expr(self, attr: AttrRef, params: list[Any]) -> str:
        """SQL for an attribute of a span; appends its bound key if any."""
        if attr.kind == "field":
            return _FIELD_SQL[attr.name]
        if attr.kind == "promoted" and attr.name in _PROMOTED:
            return attr.name
        params.append(self.d.custom_param(attr.name))
        return self.d.custom_attr("attrs_str")

    def trace_expr(self, attr: AttrRef, params: list[Any]) -> str:
        """SQL for a root attribute in the rollup table."""
        if attr.kind == "field":
            raise ValueError(
                f"{attr.name!r} is a span field; trace queries group by root attributes"
            )
        return self.span_expr(attr, params)

    def where_spans(self, flt: QueryFilter, params: list[Any], extra: Sequence[str] = ()) -> str:
        """WHERE clause over the spans table."""
        return self._where(flt, params, "start_ns", self.span_expr, with_kind=True, extra=extra)

    def where_traces(self, flt: QueryFilter, params: list[Any]) -> str:
        """WHERE clause over the rollup table (times are the trace's first start)."""
        return self._where(flt, params, "started_ns", self.trace_expr, with_kind=False)

    def _where(
        self,
        flt: QueryFilter,
        params: list[Any],
        start_col: str,
        expr_of: Callable[[AttrRef, list[Any]], str],
        *,
        with_kind: bool,
        extra: Sequence[str] = (),
    ) -> str:
        ph = self.d.ph
        conds = list(extra)
        bounds: list[tuple[str, object]] = [
            (f"trace_id = {ph}", flt.trace_id),
            (f"{start_col} >= {ph}", flt.since_ns),
            (f"{start_col} < {ph}", flt.until_ns),
        ]
        if with_kind:
            bounds.append((f"kind = {ph}", flt.kind))
        for cond, value in bounds:
            if value is not None:
                conds.append(cond)
                params.append(value)
        for attr, value in flt.where:
            expr = expr_of(attr, params)
            if value is None:
                conds.append(f"{expr} IS NULL")
            else:
                conds.append(f"{expr} = {ph}")
                params.append(value)
        return f" WHERE {' AND '.join(conds)}" if conds else ""

    # -- queries -----------------------------------------------------------

    def spans(self, flt: QueryFilter, limit: int | None) -> Query:
        """Select full span rows."""
        params: list[Any] = []
        sql = f"SELECT {_SPAN_SELECT} FROM {self.n.spans}{self.where_spans(flt, params)}"
        sql += " ORDER BY start_ns, span_id"
        if limit is not None:
            sql += f" LIMIT {self.d.ph}"
            params.append(limit)
        return sql, params

    def cost_by(self, attr: AttrRef, flt: QueryFilter) -> Query:
        """Group spans by one attribute."""
        params: list[Any] = []
        key = self.span_expr(attr, params)
        extra = ["kind = 'tool'"] if attr.kind == "field" and attr.name == "tool" else []
        where = self.where_spans(flt, params, extra)
        sql = (
            f"SELECT {key} AS k, SUM(cost_pico), COUNT(*), COUNT(DISTINCT trace_id),"
            " SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END),"
            " SUM(input_tokens), SUM(output_tokens)"
            f" FROM {self.n.spans}{where} GROUP BY 1"
        )
        return sql, params

    @staticmethod
    def cost_rows(rows: Sequence[Sequence[Any]]) -> list[CostRow]:
        """Decode :meth:`cost_by` rows."""
        return [
            CostRow(
                key=None if k is None else str(k),
                cost=from_pico(pico),
                spans=int(spans),
                traces=int(traces),
                unpriced=int(unpriced or 0),
                input_tokens=int(tin or 0),
                output_tokens=int(tout or 0),
            )
            for k, pico, spans, traces, unpriced, tin, tout in rows
        ]

    def cost_split(self, flt: QueryFilter) -> Query:
        """Sum by kind family."""
        params: list[Any] = []
        where = self.where_spans(flt, params)
        sql = (
            "SELECT CASE WHEN kind IN ('llm', 'embedding') THEN 'llm'"
            " WHEN kind = 'tool' THEN 'tool' ELSE 'other' END,"
            " SUM(cost_pico), COUNT(*), SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)"
            f" FROM {self.n.spans}{where} GROUP BY 1"
        )
        return sql, params

    @staticmethod
    def split_result(rows: Sequence[Sequence[Any]]) -> CostSplit:
        """Decode :meth:`cost_split` rows."""
        picos = {"llm": 0, "tool": 0, "other": 0}
        spans = unpriced = 0
        for family, pico, n, u in rows:
            picos[str(family)] = int(pico or 0)
            spans += int(n)
            unpriced += int(u or 0)
        return CostSplit(
            llm=from_pico(picos["llm"]),
            tool=from_pico(picos["tool"]),
            other=from_pico(picos["other"]),
            total=from_pico(sum(picos.values())),
            spans=spans,
            unpriced=unpriced,
        )

    def time_series(self, width_ns: int, attr: AttrRef | None, flt: QueryFilter) -> Query:
        """Bucket spans by start time (integer division keeps UTC alignment)."""
        ph = self.d.ph
        params: list[Any] = [width_ns, width_ns]
        key = "NULL" if attr is None else self.span_expr(attr, params)
        where = self.where_spans(flt, params)
        sql = (
            f"SELECT (start_ns / {ph}) * {ph} AS b, {key} AS k, SUM(cost_pico), COUNT(*),"
            " SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)"
            f" FROM {self.n.spans}{where} GROUP BY 1, 2"
        )
        return sql, params

    @staticmethod
    def buckets(rows: Sequence[Sequence[Any]]) -> list[TimeBucket]:
        """Decode :meth:`time_series` rows."""
        return [
            TimeBucket(
                start=ns_to_datetime(int(b)),
                key=None if k is None else str(k),
                cost=from_pico(pico),
                spans=int(n),
                unpriced=int(u or 0),
            )
            for b, k, pico, n, u in rows
        ]

    def percentiles(self, attr: AttrRef, quantiles: Sequence[float], flt: QueryFilter) -> Query:
        """Rows at the nearest ranks of each quantile (and the max) per group.

        Window functions number each group's traces by total; only the rows
        at the wanted ranks leave the database, so the cost is one sort of
        the rollup table, never a scan of spans.
        """
        params: list[Any] = []
        key = self.trace_expr(attr, params)
        where = self.where_traces(flt, params)
        rank_sql, binds = self.d.rank()
        ranks: list[str] = []
        for q in quantiles:
            ranks.append(f"rn = {rank_sql}")
            params.extend([float(q)] * binds)
        sql = (
            "SELECT k, total_pico, rn, cnt, sum_pico, unpriced_traces FROM ("
            " SELECT k, total_pico,"
            " ROW_NUMBER() OVER (PARTITION BY k ORDER BY total_pico, trace_id) AS rn,"
            " COUNT(*) OVER (PARTITION BY k) AS cnt,"
            " SUM(total_pico) OVER (PARTITION BY k) AS sum_pico,"
            " SUM(CASE WHEN unpriced > 0 THEN 1 ELSE 0 END) OVER (PARTITION BY k)"
            " AS unpriced_traces"
            f" FROM (SELECT {key} AS k, total_pico, trace_id, unpriced FROM {self.n.traces}{where})"
            " base) w"
            f" WHERE rn = cnt OR {' OR '.join(ranks) if ranks else 'FALSE'}"
        )
        return sql, params

    @staticmethod
    def percentile_rows(
        rows: Sequence[Sequence[Any]], quantiles: Sequence[float]
    ) -> list[PercentileRow]:
        """Pick each quantile's row per group, with the same rank rule as memory."""
        import math

        groups: dict[str | None, dict[int, int]] = {}
        meta: dict[str | None, tuple[int, int, int]] = {}
        for k, total, rn, cnt, sum_pico, unpriced in rows:
            key = None if k is None else str(k)
            groups.setdefault(key, {})[int(rn)] = int(total)
            meta[key] = (int(cnt), int(sum_pico or 0), int(unpriced or 0))
        out: list[PercentileRow] = []
        for key, by_rank in groups.items():
            cnt, sum_pico, unpriced = meta[key]
            out.append(
                PercentileRow(
                    key=key,
                    traces=cnt,
                    total=from_pico(sum_pico),
                    max=from_pico(by_rank[cnt]),
                    quantiles={
                        q: from_pico(by_rank[max(1, math.ceil(q * cnt))]) for q in quantiles
                    },
                    unpriced_traces=unpriced,
                )
            )
        return out

    def top_traces(self, n: int, flt: QueryFilter) -> Query:
        """The most expensive rollup rows."""
        params: list[Any] = []
        where = self.where_traces(flt, params)
        params.append(n)
        sql = (
            "SELECT trace_id, root_name, total_pico, spans, unpriced, started_ns"
            f" FROM {self.n.traces}{where} ORDER BY total_pico DESC, trace_id LIMIT {self.d.ph}"
        )
        return sql, params

    @staticmethod
    def top_rows(rows: Sequence[Sequence[Any]]) -> list[TopTrace]:
        """Decode :meth:`top_traces` rows."""
        return [
            TopTrace(
                trace_id=str(tid),
                root_name=name,
                cost=from_pico(pico),
                spans=int(spans),
                unpriced=int(unpriced),
                started=ns_to_datetime(int(started)),
            )
            for tid, name, pico, spans, unpriced, started in rows
        ]


class SqlQueries:
    """The query half of a SQL store, shared by SQLite and PostgreSQL.

    A store provides ``sql`` (its :class:`Sql` builder) and ``_query`` (run a
    statement, return rows); the statements and the row decoding live here
    once.
    """

    sql: Sql

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def spans(self, flt: QueryFilter, limit: int | None) -> list[SpanRecord]:
        """Matching spans by start time, then span id."""
        return [decode_span(r) for r in self._query(*self.sql.spans(flt, limit))]

    def cost_by(self, attr: AttrRef, flt: QueryFilter) -> list[CostRow]:
        """Spend grouped by one attribute."""
        return self.sql.cost_rows(self._query(*self.sql.cost_by(attr, flt)))

    def cost_split(self, flt: QueryFilter) -> CostSplit:
        """LLM vs tool vs other."""
        return self.sql.split_result(self._query(*self.sql.cost_split(flt)))

    def time_series(
        self, width_ns: int, attr: AttrRef | None, flt: QueryFilter
    ) -> list[TimeBucket]:
        """Spend per bucket."""
        return self.sql.buckets(self._query(*self.sql.time_series(width_ns, attr, flt)))

    def percentiles(
        self, attr: AttrRef, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Per-trace total quantiles per root attribute."""
        rows = self._query(*self.sql.percentiles(attr, quantiles, flt))
        return self.sql.percentile_rows(rows, quantiles)

    def top_traces(self, n: int, flt: QueryFilter) -> list[TopTrace]:
        """Most expensive traces."""
        return self.sql.top_rows(self._query(*self.sql.top_traces(n, flt)))
