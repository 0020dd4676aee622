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
from faremeter.ledger.hourly import split_of_picos
from faremeter.ledger.memory import (
    nearest_rank,
    ns_to_datetime,
    outlier_row,
    part_rows,
    usage_group_rows,
)
from faremeter.ledger.results import (
    CostRow,
    CostSplit,
    GroupRow,
    OutlierTrace,
    PercentileRow,
    TimeBucket,
    TopTrace,
    TracePath,
    UsageGroup,
)
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
_STATUS = AttrRef("field", "status")
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
                if attr == _STATUS and value != "ok":
                    # Spelled out so SQLite sees it may use the partial index of
                    # the spans that did not end "ok" (errors, denials, cache hits).
                    conds.append("status <> 'ok'")
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
        picos: dict[str, int] = {}
        spans = unpriced = 0
        for family, pico, n, u in rows:
            picos[str(family)] = int(pico or 0)
            spans += int(n)
            unpriced += int(u or 0)
        return split_of_picos(picos, spans, unpriced)

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

    def percentiles(self, attr: AttrRef | None, flt: QueryFilter) -> Query:
        """Each matching trace's group and total, and whether it has unpriced spans.

        Two integers and a key per trace; :func:`part_rows` ranks them in
        Python, which on a 100k-trace ledger is several times faster than
        window functions sorting the rollup table in SQL.
        """
        params: list[Any] = []
        key = "NULL" if attr is None else self.trace_expr(attr, params)
        where = self.where_traces(flt, params)
        return f"SELECT {key}, total_pico, unpriced FROM {self.n.traces}{where}", params

    def trace_summary(self, flt: QueryFilter) -> Query:
        """Count, sum, max and traces with unpriced spans, over matching rollup rows."""
        params: list[Any] = []
        where = self.where_traces(flt, params)
        sql = (
            "SELECT COUNT(*), SUM(total_pico), MAX(total_pico),"
            f" SUM(CASE WHEN unpriced > 0 THEN 1 ELSE 0 END) FROM {self.n.traces}{where}"
        )
        return sql, params

    def trace_groups(self, attr: AttrRef, flt: QueryFilter) -> Query:
        """:meth:`trace_summary` per value of a root attribute."""
        params: list[Any] = []
        key = self.trace_expr(attr, params)
        where = self.where_traces(flt, params)
        sql = (
            f"SELECT {key}, COUNT(*), SUM(total_pico), MAX(total_pico),"
            " SUM(CASE WHEN unpriced > 0 THEN 1 ELSE 0 END)"
            f" FROM {self.n.traces}{where} GROUP BY 1"
        )
        return sql, params

    def nth_total(self, flt: QueryFilter, rank: int) -> Query:
        """The ``rank``-th smallest total: a walk along the ``(total_pico, ...)`` index."""
        params: list[Any] = []
        where = self.where_traces(flt, params)
        params.append(rank - 1)
        sql = (
            f"SELECT total_pico FROM {self.n.traces}{where}"
            f" ORDER BY total_pico LIMIT 1 OFFSET {self.d.ph}"
        )
        return sql, params

    def above(self, flt: QueryFilter, floor_pico: int, limit: int) -> Query:
        """Traces whose total exceeds ``floor_pico``, most expensive first (index range)."""
        params: list[Any] = []
        where = self.where_traces(flt, params)
        cond = f"total_pico > {self.d.ph}"
        where = f"{where} AND {cond}" if where else f" WHERE {cond}"
        params += [floor_pico, limit]
        sql = (
            "SELECT trace_id, root_name, total_pico, spans, unpriced, started_ns"
            f" FROM {self.n.traces}{where} ORDER BY total_pico DESC, trace_id LIMIT {self.d.ph}"
        )
        return sql, params

    def histogram(self, num: int, den: int, flt: QueryFilter) -> Query:
        """Traces per bin of width ``num / den`` picodollars (truncating division)."""
        params: list[Any] = []
        where = self.where_traces(flt, params)
        sql = (
            f"SELECT (total_pico * {int(den)}) / {int(num)}, COUNT(*)"
            f" FROM {self.n.traces}{where} GROUP BY 1"
        )
        return sql, params

    def trace_ids_with(self, flt: QueryFilter, limit: int | None) -> Query:
        """Distinct trace ids of matching spans, ascending."""
        params: list[Any] = []
        sql = f"SELECT DISTINCT trace_id FROM {self.n.spans}{self.where_spans(flt, params)}"
        sql += " ORDER BY trace_id"
        if limit is not None:
            sql += f" LIMIT {self.d.ph}"
            params.append(limit)
        return sql, params

    def trace_rows(self, trace_ids: Sequence[str]) -> Query:
        """Rollup rows of a few traces, as :meth:`top_traces` reads them."""
        marks = ", ".join([self.d.ph] * len(trace_ids))
        sql = (
            "SELECT trace_id, root_name, total_pico, spans, unpriced, started_ns"
            f" FROM {self.n.traces} WHERE trace_id IN ({marks})"
        )
        return sql, list(trace_ids)

    def spans_of(self, trace_ids: Sequence[str]) -> Query:
        """Every span of a few traces, by trace, then start, then span id."""
        marks = ", ".join([self.d.ph] * len(trace_ids))
        sql = (
            f"SELECT {_SPAN_SELECT} FROM {self.n.spans} WHERE trace_id IN ({marks})"
            " ORDER BY trace_id, start_ns, span_id"
        )
        return sql, list(trace_ids)

    def part_percentiles(self, attr: AttrRef, flt: QueryFilter) -> tuple[Query, Query]:
        """Per-(trace, value) sums of span costs, and per value the traces with unpriced parts.

        Grouping by ``trace_id`` first lets SQLite walk the trace index and sort
        only within a trace; the rows carry just the value and the sum, and
        :func:`part_rows` ranks them.
        """
        params: list[Any] = []
        key = self.span_expr(attr, params)
        where = self.where_spans(flt, params)
        parts = (
            f"SELECT {key}, COALESCE(SUM(cost_pico), 0)"
            f" FROM {self.n.spans}{where} GROUP BY trace_id, 1"
        )
        uparams: list[Any] = []
        ukey = self.span_expr(attr, uparams)
        uwhere = self.where_spans(flt, uparams, ["cost_pico IS NULL"])
        unpriced = f"SELECT {ukey}, COUNT(DISTINCT trace_id) FROM {self.n.spans}{uwhere} GROUP BY 1"
        return (parts, params), (unpriced, uparams)

    def part_outliers(
        self,
        attr: AttrRef,
        medians: Sequence[tuple[str | None, int]],
        num: int,
        den: int,
        flt: QueryFilter,
        limit: int,
    ) -> Query:
        """Parts above ``num/den`` x their value's median, the medians passed in.

        The medians (from :meth:`part_percentiles`) arrive as a ``VALUES``
        table joined null-safely on the value, so only the outliers leave the
        database. ``num``/``den``/``limit`` are integers computed by the ledger.
        """
        params: list[Any] = []
        ph = self.d.ph
        rows = ", ".join([f"(CAST({ph} AS TEXT), CAST({ph} AS BIGINT))"] * len(medians))
        for key, med in medians:
            params.extend([key, med])
        key = self.span_expr(attr, params)
        where = self.where_spans(flt, params)
        same = "p.k IS m.mk" if self.d.name == "sqlite" else "p.k IS NOT DISTINCT FROM m.mk"
        sql = (
            f"WITH m(mk, med) AS (VALUES {rows})"
            " SELECT p.trace_id, p.k, p.s, m.med FROM ("
            f"SELECT trace_id, {key} AS k, COALESCE(SUM(cost_pico), 0) AS s"
            f" FROM {self.n.spans}{where} GROUP BY 1, 2) p JOIN m ON {same}"
            f" WHERE p.s * {int(den)} > m.med * {int(num)}"
            f" ORDER BY p.s DESC, p.trace_id, p.k IS NULL, p.k LIMIT {int(limit)}"
        )
        return sql, params

    def trace_meta(self, trace_ids: Sequence[str]) -> Query:
        """Rollup facts of a few traces."""
        marks = ", ".join([self.d.ph] * len(trace_ids))
        sql = (
            "SELECT trace_id, root_name, spans, unpriced, started_ns"
            f" FROM {self.n.traces} WHERE trace_id IN ({marks})"
        )
        return sql, list(trace_ids)

    def trace_ids(self, prefix: str, limit: int) -> Query:
        """Trace ids starting with ``prefix``: a range scan on the rollup's key.

        A range (``>= prefix`` and ``< prefix + '~'``; ids are lower-case hex)
        uses the primary-key index on SQLite and PostgreSQL alike, where
        ``LIKE`` may not.
        """
        ph = self.d.ph
        sql = (
            f"SELECT trace_id FROM {self.n.traces} WHERE trace_id >= {ph} AND trace_id < {ph}"
            f" ORDER BY trace_id LIMIT {ph}"
        )
        return sql, [prefix, prefix + "~", limit]

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

    def group_by(self, attrs: Sequence[AttrRef], flt: QueryFilter) -> Query:
        """Group spans by several attributes at once."""
        params: list[Any] = []
        keys = [self.span_expr(a, params) for a in attrs]
        tool = any(a.kind == "field" and a.name == "tool" for a in attrs)
        where = self.where_spans(flt, params, ["kind = 'tool'"] if tool else [])
        ordinals = ", ".join(str(i + 1) for i in range(len(keys)))
        sql = (
            f"SELECT {', '.join(keys)}, SUM(cost_pico), COUNT(*), COUNT(DISTINCT trace_id),"
            " SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END),"
            " SUM(input_tokens), SUM(output_tokens)"
            f" FROM {self.n.spans}{where} GROUP BY {ordinals}"
        )
        return sql, params

    @staticmethod
    def group_rows(rows: Sequence[Sequence[Any]], width: int) -> list[GroupRow]:
        """Decode :meth:`group_by` rows."""
        out: list[GroupRow] = []
        for r in rows:
            pico, spans, traces, unpriced, tin, tout = r[width:]
            out.append(
                GroupRow(
                    keys=tuple(None if k is None else str(k) for k in r[:width]),
                    cost=from_pico(pico),
                    spans=int(spans),
                    traces=int(traces),
                    unpriced=int(unpriced or 0),
                    input_tokens=int(tin or 0),
                    output_tokens=int(tout or 0),
                )
            )
        return out

    def outliers(self, attr: AttrRef | None, flt: QueryFilter) -> Query:
        """Each matching trace's group, total and id (outliers are picked in Python)."""
        params: list[Any] = []
        key = "NULL" if attr is None else self.trace_expr(attr, params)
        where = self.where_traces(flt, params)
        return f"SELECT {key}, total_pico, trace_id FROM {self.n.traces}{where}", params

    def usage_groups(self, attr: AttrRef | None, flt: QueryFilter) -> Query:
        """Spans grouped by an attribute, model, exact usage text and status."""
        params: list[Any] = []
        key = "NULL" if attr is None else self.span_expr(attr, params)
        where = self.where_spans(flt, params)
        sql = (
            f"SELECT {key}, model, usage, status, COUNT(*), SUM(cost_pico),"
            " SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)"
            f" FROM {self.n.spans}{where} GROUP BY 1, 2, 3, 4"
        )
        return sql, params

    def trace_paths(self, flt: QueryFilter) -> tuple[Query, Query]:
        """Path elements in (trace, start, span id) order, and the traces' rollup rows.

        Ordered rows grouped in Python beat an ordered window aggregate on
        both engines (SQLite before 3.44 has no ``ORDER BY`` inside
        ``group_concat``): the scan follows the trace index and only the
        part within a trace is sorted.
        """
        params: list[Any] = []
        e = "CASE WHEN kind = 'tool' THEN name ELSE step END"
        where = self.where_spans(flt, params, [f"{e} IS NOT NULL"])
        rows = (
            f"SELECT trace_id, {e} FROM {self.n.spans}{where} ORDER BY trace_id, start_ns, span_id"
        )
        tparams: list[Any] = []
        tsql = f"SELECT trace_id, total_pico, unpriced, started_ns FROM {self.n.traces}"
        if flt.until_ns is not None:
            tsql += f" WHERE started_ns < {self.d.ph}"
            tparams.append(flt.until_ns)
        return (rows, params), (tsql, tparams)

    @staticmethod
    def path_rows(
        rows: Sequence[Sequence[Any]], totals: Sequence[Sequence[Any]]
    ) -> list[TracePath]:
        """Group ordered element rows per trace (runs collapsed) and attach each total."""
        by_id = {t[0]: t for t in totals}
        out: list[TracePath] = []
        append = out.append
        current: Any = None
        elements: list[str] = []

        def emit() -> None:
            t = by_id.get(current)
            if t is not None:  # spans and their rollup row are written in one transaction
                append(
                    TracePath(
                        trace_id=str(current),
                        elements=tuple(elements),
                        cost=from_pico(t[1]),
                        unpriced=int(t[2]),
                        started=ns_to_datetime(int(t[3])),
                    )
                )

        for tid, e in rows:
            if tid != current:
                if current is not None:
                    emit()
                current, elements = tid, [e]
            elif elements[-1] != e:
                elements.append(e)
        if current is not None:
            emit()
        return out


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
        self, attr: AttrRef | None, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Per-trace total quantiles per root attribute (``None``: one group), ranked in Python."""
        rows = self._query(*self.sql.percentiles(attr, flt))
        unpriced: dict[str | None, int] = {}
        for k, _, u in rows:
            if u:
                key = None if k is None else str(k)
                unpriced[key] = unpriced.get(key, 0) + 1
        return part_rows(((k, t) for k, t, _ in rows), unpriced, quantiles)

    def trace_histogram(self, num: int, den: int, flt: QueryFilter) -> dict[int, int]:
        """Traces per bin of ``num / den`` picodollars."""
        return {int(b): int(n) for b, n in self._query(*self.sql.histogram(num, den, flt))}

    def trace_ids_with(self, flt: QueryFilter, limit: int | None) -> list[str]:
        """Ids of traces with a matching span, ascending."""
        return [str(r[0]) for r in self._query(*self.sql.trace_ids_with(flt, limit))]

    def traces(self, trace_ids: Sequence[str]) -> list[TopTrace]:
        """Rollup facts of the given traces, by trace id."""
        ids = sorted(set(trace_ids))
        out: list[TopTrace] = []
        for i in range(0, len(ids), 500):
            out += self.sql.top_rows(self._query(*self.sql.trace_rows(ids[i : i + 500])))
        return sorted(out, key=lambda t: t.trace_id)

    def spans_of(self, trace_ids: Sequence[str]) -> list[SpanRecord]:
        """Every span of ``trace_ids``, by trace, start and span id."""
        ids = sorted(set(trace_ids))
        out: list[SpanRecord] = []
        for i in range(0, len(ids), 500):
            out += [decode_span(r) for r in self._query(*self.sql.spans_of(ids[i : i + 500]))]
        return out

    def top_traces(self, n: int, flt: QueryFilter) -> list[TopTrace]:
        """Most expensive traces."""
        return self.sql.top_rows(self._query(*self.sql.top_traces(n, flt)))

    def trace_ids(self, prefix: str, limit: int) -> list[str]:
        """Stored trace ids starting with ``prefix``."""
        return [str(r[0]) for r in self._query(*self.sql.trace_ids(prefix, limit))]

    def group_by(self, attrs: Sequence[AttrRef], flt: QueryFilter) -> list[GroupRow]:
        """Spend grouped by several attributes."""
        return self.sql.group_rows(self._query(*self.sql.group_by(attrs, flt)), len(attrs))

    def part_percentiles(
        self, attr: AttrRef, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Per-value distribution of per-trace spend."""
        parts_q, unpriced_q = self.sql.part_percentiles(attr, flt)
        unpriced = {None if k is None else str(k): int(n) for k, n in self._query(*unpriced_q)}
        return part_rows(self._query(*parts_q), unpriced, quantiles)

    def outliers(
        self, attr: AttrRef | None, num: int, den: int, flt: QueryFilter, limit: int
    ) -> list[OutlierTrace]:
        """Traces above the outlier rule: ranked in Python, then a few rollup rows read."""
        groups: dict[str | None, list[tuple[int, str]]] = {}
        for k, total, tid in self._query(*self.sql.outliers(attr, flt)):
            groups.setdefault(None if k is None else str(k), []).append((int(total), str(tid)))
        found: list[tuple[int, str, str | None, int]] = []
        for key, members in groups.items():
            members.sort()
            median = members[nearest_rank(0.5, len(members)) - 1][0]
            found.extend((t, tid, key, median) for t, tid in members if t * den > median * num)
        found.sort(key=lambda f: (-f[0], f[1]))
        found = found[:limit]
        if not found:
            return []
        meta = {str(r[0]): r for r in self._query(*self.sql.trace_meta([f[1] for f in found]))}
        return [
            outlier_row(tid, key, meta[tid][1], total, median, int(meta[tid][2]),
                        int(meta[tid][3]), int(meta[tid][4]))
            for total, tid, key, median in found
        ]  # fmt: skip

    def trace_paths(self, flt: QueryFilter) -> list[TracePath]:
        """Raw per-trace paths."""
        rows_q, totals_q = self.sql.trace_paths(flt)
        rows = self._query(*rows_q)
        return self.sql.path_rows(rows, self._query(*totals_q) if rows else [])

    def usage_groups(self, attr: AttrRef | None, flt: QueryFilter) -> list[UsageGroup]:
        """Spans per (attribute, model, usage, status)."""
        return usage_group_rows(self._query(*self.sql.usage_groups(attr, flt)))

    def part_outliers(
        self,
        attr: AttrRef,
        medians: Sequence[tuple[str | None, int]],
        num: int,
        den: int,
        flt: QueryFilter,
        limit: int,
    ) -> list[OutlierTrace]:
        """Parts above the outlier rule, with their traces' rollup facts."""
        if not medians or limit == 0:
            return []
        picked = [
            (str(t), None if k is None else str(k), int(p), int(m))
            for t, k, p, m in self._query(
                *self.sql.part_outliers(attr, medians, num, den, flt, limit)
            )
        ]
        if not picked:
            return []
        ids = sorted({t for t, _, _, _ in picked})
        meta = {str(r[0]): r for r in self._query(*self.sql.trace_meta(ids))}
        return [
            outlier_row(tid, key, meta[tid][1], pico, median, int(meta[tid][2]),
                        int(meta[tid][3]), int(meta[tid][4]))
            for tid, key, pico, median in picked
        ]  # fmt: skip
