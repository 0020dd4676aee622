"""The dashboard page in a real headless Chromium (Playwright), over a known workload.

Waits are Playwright's auto-waiting expectations on DOM states (each panel
sets ``data-state="ready"`` once drawn), never sleeps, so the page's 2 s
polling cannot make a test flaky. The screenshots embedded in the docs are
taken here, from the page under test; they are written into ``docs/img`` when
missing or when ``FAREMETER_UPDATE_SCREENSHOTS=1`` is set, so an ordinary test
run leaves the checkout clean.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the dashboard extra (starlette, uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _chromium() -> str | None:
    for candidate in (os.environ.get("FAREMETER_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary (apt-get install chromium, or set FAREMETER_CHROMIUM)",
)

from faremeter.budgets import Budget, BudgetManager  # noqa: E402
from faremeter.dashboard.sample import SampleWorkload, record_sample_workload  # noqa: E402
from faremeter.dashboard.server import DashboardServer  # noqa: E402
from faremeter.meter import Meter  # noqa: E402
from faremeter.testing import make_test_meter  # noqa: E402

NOW_NS = 1_767_225_600_000_000_000  # the dashboard's pinned "now": 2026-01-01T00:00Z
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
PANELS = ("ticker", "tasks", "distribution", "opportunities")


def _pinned() -> int:
    return NOW_NS


def _docs_screenshot(page: Any, name: str, **options: Any) -> None:
    """Take the screenshot the docs embed; store it only when asked (or missing)."""
    image: bytes = page.screenshot(**options)
    assert image.startswith(b"\x89PNG"), "the page did not render to a PNG"
    target = DOCS_IMG / name
    if os.environ.get("FAREMETER_UPDATE_SCREENSHOTS") == "1" or not target.exists():
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image)


class Dashboard:
    def __init__(self, meter: Meter, work: SampleWorkload, server: DashboardServer) -> None:
        self.meter = meter
        self.work = work
        self.server = server


def _budgets() -> BudgetManager:
    """Two daily budgets, read one minute before midnight (the workload's day)."""
    return BudgetManager(
        [
            Budget("daily", limit=Decimal(2), window="day"),
            Budget("per-user", limit=Decimal("0.40"), window="day", per="user_id", action="warn"),
        ],
        clock=lambda: NOW_NS - 60 * 10**9,
    )


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'ledger.db'}"
    meter = make_test_meter(budgets=_budgets(), ledger=url)
    work = record_sample_workload(meter, now_ns=NOW_NS)
    # What the call lifecycle does per task: reserve, then settle to the actual cost.
    for t in meter.ledger.top_traces(100):
        (root,) = meter.ledger.spans(t.trace_id, where={"kind": "agent"})
        user = {"user_id": root.attributes["user_id"]}
        meter.budgets.reserve(attributes=user, amount=t.cost).settle(t.cost)
    meter.budgets.reserve(attributes={"user_id": "u2"}, amount=Decimal("0.05"))  # in flight
    server = DashboardServer(meter, clock=_pinned).start()
    try:
        yield Dashboard(meter, work, server)
    finally:
        server.stop()
        meter.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, color_scheme="light")
    page = context.new_page()
    page.goto(dashboard.server.url + "/")
    for name in PANELS:
        sync_api.expect(page.locator(f"#panel-{name}")).to_have_attribute("data-state", "ready")
    yield page
    context.close()


def test_the_four_panels_render_the_ledger_numbers(page: Any, dashboard: Dashboard) -> None:
    ledger = dashboard.meter.ledger
    total = ledger.cost_split().total
    sync_api.expect(page.locator("#ticker-total")).to_have_attribute("data-value", str(total))
    sync_api.expect(page.locator("#ticker-total")).to_have_text(re.compile(r"^\$\d+\.\d{2,4}$"))
    top = ledger.top_traces(50)
    rows = page.locator("#tasks-table tbody tr")
    sync_api.expect(rows).to_have_count(len(top))
    first_cost = rows.first.locator("td.money")
    sync_api.expect(first_cost).to_have_attribute("data-value", str(top[0].cost.normalize()))
    sync_api.expect(page.locator("#dist-chart canvas")).to_have_count(1)
    sync_api.expect(page.locator("#ticker-chart canvas")).to_have_count(1)
    sync_api.expect(
        page.locator("#opportunities-list li[data-kind='outlier_tasks']")
    ).to_have_count(1)
    statuses = dashboard.meter.budgets.status()
    in_flight = sum((s.reserved for s in statuses), Decimal(0))
    sync_api.expect(page.locator("#budgets-in-flight")).to_have_attribute(
        "data-value", str(in_flight.normalize())
    )
    sync_api.expect(page.locator("#budgets-body .budget")).to_have_count(len(statuses))
    sync_api.expect(page.locator("#anomalies-list li:not(.empty)")).to_have_count(1)
    sync_api.expect(page.locator("#savings-cache")).to_have_attribute("data-value", "0.045")
    _docs_screenshot(page, "dashboard.png", full_page=True)


def test_the_known_outlier_row_is_red_and_the_others_are_not(
    page: Any, dashboard: Dashboard
) -> None:
    outlier = page.locator(f"tr[data-trace-id='{dashboard.work.outlier_trace_id}']")
    sync_api.expect(outlier).to_have_class("outlier")
    sync_api.expect(outlier.locator("td").first).to_have_css("color", "rgb(198, 40, 40)")
    normal = page.locator("#tasks-table tbody tr[data-outlier='false']")
    assert normal.count() == 17
    sync_api.expect(normal.first.locator("td").last).not_to_have_css("color", "rgb(198, 40, 40)")


def test_the_p90_marker_sits_at_the_computed_p90(page: Any, dashboard: Dashboard) -> None:
    (row,) = dashboard.meter.ledger.percentiles(by="faremeter.dashboard.all")
    p90 = row.quantiles[0.9]
    marker = page.locator("#marker-p90")
    sync_api.expect(marker).to_have_attribute("data-value", str(p90.normalize()))
    chart = page.locator("#dist-chart")
    lo = Decimal(chart.get_attribute("data-x-min") or "nan")
    hi = Decimal(chart.get_attribute("data-x-max") or "nan")
    plot = page.locator("#dist-chart .u-over").bounding_box()
    drawn = marker.bounding_box()
    assert plot is not None and drawn is not None
    expected_x = plot["x"] + float((p90 - lo) / (hi - lo)) * plot["width"]
    assert abs(drawn["x"] - expected_x) <= 1.0, (drawn["x"], expected_x)
    # P50 and P99 are drawn too, in order along the axis.
    xs = [page.locator(f"#marker-{k}").bounding_box()["x"] for k in ("p50", "p90", "p99")]
    assert xs == sorted(xs) and xs[0] < xs[2]


def test_clicking_a_task_opens_its_trace_tree(page: Any, dashboard: Dashboard) -> None:
    tid = dashboard.work.outlier_trace_id
    page.locator(f"tr[data-trace-id='{tid}']").click()
    view = page.locator("#trace-view")
    sync_api.expect(view).to_be_visible()
    sync_api.expect(view).to_have_attribute("data-state", "ready")
    tree = dashboard.meter.ledger.trace_tree(tid)
    sync_api.expect(page.locator("#trace-tree tbody tr")).to_have_count(len(tree.spans))
    sync_api.expect(page.locator("#trace-total")).to_have_attribute(
        "data-value", str(tree.total_cost.normalize())
    )
    assert f"trace={tid}" in page.url
    sync_api.expect(page.locator("#trace-tree tbody tr").first).to_contain_text("research-agent")
    _docs_screenshot(page, "dashboard-trace.png")
    page.locator("#trace-close").click()
    sync_api.expect(view).to_be_hidden()


def test_an_attribute_filter_narrows_every_panel(page: Any, dashboard: Dashboard) -> None:
    page.locator("#filter-attr").select_option("user_id")
    page.locator("#filter-value").fill("u3")
    page.locator("#filter-add").click()
    expected = dashboard.meter.ledger.cost_split(where={"user_id": "u3"}).total
    sync_api.expect(page.locator("#ticker-total")).to_have_attribute("data-value", str(expected))
    u3_traces = len({s.trace_id for s in dashboard.meter.ledger.spans(where={"user_id": "u3"})})
    sync_api.expect(page.locator("#tasks-table tbody tr")).to_have_count(u3_traces)
    sync_api.expect(page.locator(".chip")).to_have_text("user_id = u3")
