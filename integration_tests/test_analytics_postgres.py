"""PostgreSQL gives every analytics query the same answer as memory and SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from faremeter import analytics
from faremeter.analytics.sample import SAMPLE_START, sample_workload
from faremeter.ledger import Ledger
from faremeter.pricing import PriceCatalog

CATALOG = PriceCatalog.default()
SPANS = list(sample_workload(CATALOG, traces=150))


def filled(url: str) -> Ledger:
    led = Ledger.from_url(url)
    for s in SPANS:
        led.record(s)
    assert led.flush(60)
    return led


@pytest.fixture
def ledgers(postgres_url: str, tmp_path: Path) -> Iterator[dict[str, Ledger]]:
    leds = {
        "memory": filled("memory"),
        "sqlite": filled(f"sqlite:///{tmp_path}/ledger.db"),
        "postgresql": filled(postgres_url),
    }
    yield leds
    for led in leds.values():
        led.close()


QUERIES: dict[str, Callable[[Ledger], Any]] = {
    "group_by": lambda led: led.group_by("step", "model", "status"),
    "group_by_custom": lambda led: led.group_by("tool", "tool_args_hash"),
    "part_percentiles": lambda led: led.part_percentiles(by="step"),
    "part_percentiles_custom": lambda led: led.part_percentiles(by="prompt_prefix_hash"),
    "outliers": lambda led: led.outliers(by="workflow", factor="1.5", limit=50),
    "outliers_user": lambda led: led.outliers(by="user_id", factor=2),
    "part_outliers": lambda led: led.part_outliers(by="step", factor="1.5"),
    "trace_paths": lambda led: led.trace_paths(),
    "usage_groups": lambda led: led.usage_groups(where={"step": "classify"}),
    "usage_groups_by": lambda led: led.usage_groups(by="step", kind=None),
    "usage_totals": lambda led: led.usage_totals(by="step", kind=None),
    "time_series_15m": lambda led: led.time_series(timedelta(minutes=15), by="workflow"),
    "time_series_week": lambda led: led.time_series("week"),
    "distribution": lambda led: analytics.distribution(led, by="workflow"),
    "distribution_steps": lambda led: analytics.distribution(led, by="step", per="part"),
    "paths": lambda led: analytics.path_analysis(led, top=5),
    "segments": lambda led: analytics.segments(led, "feature"),
    "spend_series": lambda led: analytics.spend_series(led, "hour"),
    "what_if": lambda led: analytics.what_if(led, CATALOG, model="gpt-4o-mini", step="summarize"),
    "suggest": lambda led: analytics.suggest(led, CATALOG),
    "outcomes": lambda led: analytics.cost_per_outcome(led, by="team"),
    "windowed": lambda led: analytics.distribution(
        led,
        since=SAMPLE_START + timedelta(hours=1),
        until=SAMPLE_START + timedelta(hours=3),
        where={"feature": "free"},
    ),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_backend_gives_the_same_answer(ledgers: dict[str, Ledger], name: str) -> None:
    query = QUERIES[name]
    answers = {backend: query(led) for backend, led in ledgers.items()}
    assert answers["postgresql"] == answers["memory"] == answers["sqlite"]
    assert answers["memory"], f"{name} returned nothing on the known workload"
