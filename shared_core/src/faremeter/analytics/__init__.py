"""Analytics over the ledger: where the money goes, what went wrong, what to change.

Every function takes a :class:`~faremeter.ledger.Ledger` (``meter.ledger``)
and returns frozen values with :class:`~decimal.Decimal` money; the numbers
are the ledger's own queries (memory, SQLite and PostgreSQL give the same
answers), so a report, the CLI and the dashboard never disagree.
"""

from __future__ import annotations

from faremeter.analytics.anomalies import (
    ARGS_HASH_ATTRIBUTE,
    INPUT_SIZE_ATTRIBUTE,
    AnomalyMonitor,
    LoopDetector,
    SpendRateDetector,
    ToolRateDetector,
    spend_spikes,
    tool_args_hash,
)
from faremeter.analytics.distribution import DEFAULT_OUTLIER_FACTOR, DistributionRow, distribution
from faremeter.analytics.outcomes import OutcomeRow, cost_per_outcome, outcome_span, record_outcome
from faremeter.analytics.paths import PathReport, PathStats, path_analysis
from faremeter.analytics.segments import Segment, segments
from faremeter.analytics.suggestions import DEFAULT_CHEAPER, Suggestion, suggest
from faremeter.analytics.timeseries import spend_series
from faremeter.analytics.whatif import WhatIf, WhatIfRow, what_if

__all__ = [
    "ARGS_HASH_ATTRIBUTE",
    "DEFAULT_CHEAPER",
    "DEFAULT_OUTLIER_FACTOR",
    "INPUT_SIZE_ATTRIBUTE",
    "AnomalyMonitor",
    "DistributionRow",
    "LoopDetector",
    "OutcomeRow",
    "PathReport",
    "PathStats",
    "Segment",
    "SpendRateDetector",
    "Suggestion",
    "ToolRateDetector",
    "WhatIf",
    "WhatIfRow",
    "cost_per_outcome",
    "distribution",
    "outcome_span",
    "path_analysis",
    "record_outcome",
    "segments",
    "spend_series",
    "spend_spikes",
    "suggest",
    "tool_args_hash",
    "what_if",
]
