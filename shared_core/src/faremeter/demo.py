"""Seed 001's 10-step research agent, recorded through the public API.

The scenario behind ``faremeter demo``: each step is one gpt-4o call whose
input grows with the conversation, some steps call a paid tool. Kept as data
plus one function so the CLI, the docs and the tests run the very same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from faremeter.context import attributes
from faremeter.meter import Meter
from faremeter.scope import SpanScope
from faremeter.usage import Usage

__all__ = ["RESEARCH_STEPS", "RESEARCH_TOOL_PRICES", "ResearchStep", "run_research_agent"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ResearchStep:
    """One step of the demo agent."""

    name: str
    input_tokens: int
    output_tokens: int
    tool: str | None = None


RESEARCH_STEPS: tuple[ResearchStep, ...] = (
    ResearchStep(name="parse_query", input_tokens=500, output_tokens=100),
    ResearchStep(name="plan_research", input_tokens=800, output_tokens=300),
    ResearchStep(name="web_search", input_tokens=1200, output_tokens=150, tool="web_search"),
    ResearchStep(name="read_page_1", input_tokens=2500, output_tokens=200, tool="read_page"),
    ResearchStep(name="read_page_2", input_tokens=3800, output_tokens=200, tool="read_page"),
    ResearchStep(name="summarize", input_tokens=4500, output_tokens=500),
    ResearchStep(name="fact_check", input_tokens=5200, output_tokens=150, tool="web_search"),
    ResearchStep(name="read_source", input_tokens=6000, output_tokens=200, tool="read_page"),
    ResearchStep(name="write_report", input_tokens=6800, output_tokens=1000),
    ResearchStep(name="format", input_tokens=7500, output_tokens=400),
)
"""Token counts of seed 001: 38,800 input and 3,200 output tokens in all."""

RESEARCH_TOOL_PRICES: dict[str, Decimal] = {
    "web_search": Decimal("0.005"),
    "read_page": Decimal("0.001"),
}
"""Per-call tool prices of seed 001 (configure yours under ``[tools]``)."""


def run_research_agent(
    meter: Meter, *, model: str = "gpt-4o", user_id: str = "demo-user"
) -> SpanScope:
    """Record one run of the research agent and return its trace handle.

    Tools are charged their seed-001 prices explicitly so the demo does not
    depend on the catalog's tool configuration.
    """
    with meter.trace("research-agent", user_id=user_id, workflow="research") as trace:
        for step in RESEARCH_STEPS:
            with attributes(step=step.name):
                meter.record_llm(
                    model,
                    Usage(input_tokens=step.input_tokens, output_tokens=step.output_tokens),
                )
                if step.tool is not None:
                    meter.record_tool(step.tool, cost=RESEARCH_TOOL_PRICES[step.tool])
    return trace
