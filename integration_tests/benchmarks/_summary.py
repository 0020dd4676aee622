"""One machine-readable line per design target, for ``run_all.py``.

Each benchmark stays a standalone script that prints markdown for people; a
``SUMMARY {json}`` line next to it carries the number the runner needs for the
targets table, so the runner never has to parse a table meant for readers.
``run_all.py`` strips these lines before the output goes into BENCHMARKS.md.
"""

from __future__ import annotations

import json

__all__ = ["report_summary"]


def report_summary(
    metric: str,
    value: float,
    *,
    unit: str = "",
    peer: str = "",
    peer_value: float | None = None,
    note: str = "",
) -> None:
    """Print ``SUMMARY {json}`` for one design target's measured value.

    Args:
        metric: The target's key in ``run_all.TARGETS`` (e.g. ``"pricing_us"``).
        value: Our measured value, in the target's unit.
        unit: Unit shown in the table (``µs``, ``ms``, ``s``, ``spans/s``, ``×``).
        peer: What the peer figure is, when there is one.
        peer_value: The peer's value measured in the same run, same unit.
        note: A few words on how it was measured (sizes, contenders).
    """
    record: dict[str, object] = {"metric": metric, "value": float(value)}
    if unit:
        record["unit"] = unit
    if peer_value is not None:
        record |= {"peer": peer, "peer_value": float(peer_value)}
    if note:
        record["note"] = note
    print("SUMMARY " + json.dumps(record, ensure_ascii=False), flush=True)
