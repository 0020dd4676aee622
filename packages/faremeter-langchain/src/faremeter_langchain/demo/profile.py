"""The research agent's steps, prices and routing rules — data, not code.

The token profile is the framework-free demo's (``faremeter.demo``): one task
on gpt-4o is 38,800 input and 3,200 output tokens, $0.129 of LLM and $0.013 of
tools, $0.142 in all. Each step also gets an output cap (``max_tokens``): the
budget reserves a call's worst case, so the cap is what lets a per-task limit
stop a runaway *before* the call that would cross it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from faremeter.demo import RESEARCH_STEPS, RESEARCH_TOOL_PRICES

__all__ = [
    "BASELINE_MODEL",
    "CHEAP_MODEL",
    "FALLBACK_MODEL",
    "LOOP_CONTEXT_TOKENS",
    "ROUTING_STEPS",
    "STEPS",
    "STEP_NAMES",
    "TASK_CAP",
    "TIERS",
    "TOOL_PRICES",
    "DemoStep",
]

BASELINE_MODEL = "gpt-4o"
"""What every step uses when nothing is optimised."""

CHEAP_MODEL = "gpt-4o-mini"
"""The economy model the router sends simple steps to."""

FALLBACK_MODEL = "claude-sonnet-4-5"
"""Second model of the standard tier: where a rate-limited gpt-4o call goes."""

TIERS: dict[str, list[str]] = {
    "economy": [CHEAP_MODEL],
    "standard": [BASELINE_MODEL, FALLBACK_MODEL],
}
"""Router tiers, cheapest first."""

ROUTING_STEPS: dict[str, str] = {
    "parse_query": CHEAP_MODEL,
    "plan_research": BASELINE_MODEL,
    "web_search": CHEAP_MODEL,
    "read_page_1": CHEAP_MODEL,
    "read_page_2": CHEAP_MODEL,
    "summarize": CHEAP_MODEL,
    "fact_check": BASELINE_MODEL,
    "read_source": CHEAP_MODEL,
    "write_report": BASELINE_MODEL,
    "format": CHEAP_MODEL,
}
"""Step → model: the planning, fact-checking and writing steps need reasoning;
parsing, extracting from pages, summarising and formatting do not."""

TASK_CAP = Decimal("0.50")
"""Per-task budget (``window="trace"``): a normal task costs ~$0.14, a loop is stopped here."""

LOOP_CONTEXT_TOKENS = 1_400
"""Input tokens each extra fact-check round adds to the conversation."""

TOOL_PRICES: dict[str, Decimal] = dict(RESEARCH_TOOL_PRICES)
"""Per-call tool prices: web_search $0.005, read_page $0.001."""

_CAPS = {
    "parse_query": 200,
    "plan_research": 600,
    "web_search": 300,
    "read_page_1": 400,
    "read_page_2": 400,
    "summarize": 1_000,
    "fact_check": 300,
    "read_source": 400,
    "write_report": 2_000,
    "format": 800,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoStep:
    """One node of the agent: its token profile, output cap and tool."""

    name: str
    input_tokens: int
    output_tokens: int
    max_tokens: int
    tool: str | None = None


STEPS: tuple[DemoStep, ...] = tuple(
    DemoStep(
        name=s.name,
        input_tokens=s.input_tokens,
        output_tokens=s.output_tokens,
        max_tokens=_CAPS[s.name],
        tool=s.tool,
    )
    for s in RESEARCH_STEPS
)
"""The ten steps in order: parse, plan, search, two page reads, summarise,
fact-check search, read the verification source, draft, format."""

STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
