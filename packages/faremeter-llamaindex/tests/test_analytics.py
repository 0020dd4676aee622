# pyright: basic
"""LlamaIndex tool spans carry ``tool_args_hash``: runaway loops are caught live.

No ``from __future__ import annotations``: FunctionTool finds a tool's ``Context``
parameter by its (evaluated) annotation.
"""

import asyncio
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context

from faremeter import Meter, SpanKind, Usage
from faremeter.alerts import Alert, AlertDispatcher, CallbackSink
from faremeter.analytics import AnomalyMonitor, tool_args_hash
from faremeter.testing import recorded_spans
from faremeter_llamaindex import instrument
from faremeter_llamaindex.testing import Reply, ScriptedLLM

U = Usage(input_tokens=800, output_tokens=60)
SAME = {"query": "faremeter pricing", "top_k": 5}


def test_a_function_agent_repeating_web_search_is_flagged_while_it_runs(tmeter: Meter) -> None:
    got: list[Alert] = []
    monitor = AnomalyMonitor(alerts=AlertDispatcher([CallbackSink(got.append)]))
    monitor.attach(tmeter)
    polled: list[list[str]] = []  # alert kinds seen by each poll inside the run
    seen_in_run: list[Alert] = []

    def poll() -> list[Alert]:
        """What the monitor's background thread would find at this point."""
        found = monitor.process_pending()
        polled.append([a.kind for a in found])
        return found

    def web_search(query: str, top_k: int = 3) -> str:
        """Search the web."""
        poll()
        return f"results for {query}"

    def report(ctx: Context) -> str:
        """Write the report (runs after the searches, inside the same agent run)."""
        seen_in_run.extend(poll())
        return "report written"

    script: list[Reply] = []
    for i in range(4):
        script.append(Reply(tool_calls=[("web_search", SAME)], usage=U))
        script.append(Reply(tool_calls=[("web_search", {"query": f"other {i}"})], usage=U))
    # The 5th identical call, its arguments written differently: same canonical form.
    script.append(Reply(tool_calls=[("web_search", {"top_k": 5.0, "query": SAME["query"]})]))
    script.append(Reply(tool_calls=[("report", {})], usage=U))
    script.append(Reply(text="done", usage=U))
    tools = [FunctionTool.from_defaults(web_search), FunctionTool.from_defaults(report)]
    agent = FunctionAgent(tools=tools, llm=ScriptedLLM(script))

    async def main() -> Any:
        return await agent.run(user_msg="research faremeter")

    with instrument(tmeter):
        assert str(asyncio.run(main())) == "done"
    monitor.stop()

    assert polled[:9] == [[]] * 9, "nothing is flagged before the 5th identical call"
    (alert,) = seen_in_run  # flagged while the agent was still running
    assert alert.kind == "anomaly.runaway_loop" and alert.amounts["calls"] == 5
    assert got == [alert]  # delivered through the sinks once
    spans = recorded_spans(tmeter)
    (agent_span,) = [s for s in spans if s.kind is SpanKind.AGENT]
    assert alert.subject == agent_span.trace_id
    searches = [s for s in spans if s.name == "web_search"]
    hashes = [s.attributes.get("tool_args_hash") for s in searches]
    assert len(hashes) == 9 and hashes.count(tool_args_hash(SAME)) == 5  # as LangChain stamps
    assert len(set(hashes)) == 5 and all("faremeter" not in str(h) for h in hashes)
    (written,) = [s for s in spans if s.name == "report"]
    assert written.attributes["tool_args_hash"] == tool_args_hash({})  # the Context is no argument


def test_tool_args_hash_ignores_the_workflow_context_and_separates_positional_args() -> None:
    from faremeter_llamaindex._payloads import tool_args_digest

    def search(query: str, ctx: Context) -> str:
        """Search."""
        return query

    tool = FunctionTool.from_defaults(search)
    with_ctx = tool_args_digest(tool, {"kwargs": {"query": "x", "ctx": object()}})
    assert (
        with_ctx
        == tool_args_digest(tool, {"kwargs": {"query": "x"}})
        == tool_args_hash({"query": "x"})
    )
    assert tool_args_digest(tool, {"args": ("x",)}) != tool_args_digest(tool, {"args": ("y",)})
    # Arguments with no canonical form still hash (by their text), never raise.
    assert len(tool_args_digest(None, {"kwargs": {"blob": object()}})) == 32
