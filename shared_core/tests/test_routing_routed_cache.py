"""ModelRouting with a ResponseCache: the framework-neutral rules every routed model shares."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from faremeter.caching import ResponseCache
from faremeter.fallback import RetryPolicy
from faremeter.meter import Meter
from faremeter.routing import Router
from faremeter.routing.routed_cache import StoredResponse, describe
from faremeter.routing.routed_call import ModelRouting
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage

TIERS = {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]}
USAGE = Usage(input_tokens=1000, output_tokens=200)
REQUEST = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}


class RateLimited(Exception):
    status_code = 429


class DictCodec:
    """Responses are dicts ``{"text", "model"}``; usage reported when ``report_usage``."""

    def __init__(self, *, report_usage: bool = True) -> None:
        self.report_usage = report_usage

    def dump(self, response: dict[str, Any]) -> StoredResponse | None:
        usage = USAGE if self.report_usage else None
        return StoredResponse(data=dict(response), model=response["model"], usage=usage)

    def load(self, data: Any) -> dict[str, Any] | None:
        return dict(cast("dict[str, Any]", data)) if isinstance(data, dict) else None


class ChunkCodec:
    """A stream of text chunks, kept joined."""

    def dump(self, response: list[str]) -> StoredResponse | None:
        return StoredResponse(data="".join(response), model="gpt-4o-mini", usage=USAGE)

    def load(self, data: Any) -> list[str] | None:
        return [data] if isinstance(data, str) else None


def _routing(meter: Meter, cache: ResponseCache | None, **kw: Any) -> ModelRouting:
    router = Router(kw.pop("tiers", TIERS), steps={"parse": "gpt-4o-mini"}, complexity=False)
    models = [c.model for c in router.candidates]
    return ModelRouting(
        router,
        models=models,
        meter=meter,
        retry=RetryPolicy(retries={}, jitter_s=0),
        sleep=lambda s: None,
        cache=cache,
        **kw,
    )


def _provider(meter: Meter, calls: list[str], *, record: bool = True, fail: str = "") -> Any:
    """A model call recording its priced span, as an adapter's priced layer would."""

    def call(model: str) -> dict[str, Any]:
        calls.append(model)
        if model == fail:
            raise RateLimited("slow down")
        if record:
            span = meter.start_span(model, kind=SpanKind.LLM, model=model)
            span.end(usage=USAGE)
        return {"text": f"answer from {model}", "model": model}

    return call


def _serve(routing: ModelRouting, call: Any, request: dict[str, Any] = REQUEST, **kw: Any) -> Any:
    ticket = routing.lookup(lambda: request, kw.pop("codec", DictCodec()), attributes=kw)
    if ticket.hit is not None:
        return ticket.hit
    plan = routing.plan(request["messages"], attributes=kw)
    return routing.run(plan, call, cache=ticket)


def _hits(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.status is SpanStatus.CACHED]


def _price(meter: Meter, model: str) -> Decimal:
    total = meter.catalog.cost(model, USAGE).total
    assert total is not None
    return total


def test_a_hit_is_served_before_routing_as_one_cached_span() -> None:
    meter = make_test_meter()
    routing = _routing(meter, ResponseCache(meter=meter))
    calls: list[str] = []
    with meter.trace("job") as t:
        first = _serve(routing, _provider(meter, calls), step="parse")
        second = _serve(routing, _provider(meter, calls), step="parse")
    assert first == second == {"text": "answer from gpt-4o-mini", "model": "gpt-4o-mini"}
    assert calls == ["gpt-4o-mini"]
    spans = recorded_spans(meter)
    routes = [s for s in spans if s.name == "route" and s.kind is SpanKind.CHAIN]
    assert len(routes) == 1  # the miss was routed; the hit was not
    (hit,) = _hits(meter)
    assert (hit.name, hit.kind, hit.model) == ("route", SpanKind.LLM, "gpt-4o-mini")
    assert hit.cost.total == Decimal(0) and hit.saved == _price(meter, "gpt-4o-mini")
    assert hit.attributes["step"] == "parse" and hit.attributes["cache"] == "hit"
    miss = next(s for s in spans if s.kind is SpanKind.LLM and s.status is SpanStatus.OK)
    assert miss.attributes["cache"] == "miss"
    assert miss.attributes["cache_key"] == hit.attributes["cache_key"]
    assert t.cost == _price(meter, "gpt-4o-mini")


def test_saved_is_what_the_routed_call_was_charged_after_a_fallback() -> None:
    meter = make_test_meter()
    routing = _routing(meter, ResponseCache(meter=meter))
    calls: list[str] = []
    with meter.trace("job"):
        _serve(routing, _provider(meter, calls, fail="gpt-4o-mini"), step="parse")
        _serve(routing, _provider(meter, calls), step="parse")
    assert calls == ["gpt-4o-mini", "gpt-4o"]
    (hit,) = _hits(meter)
    assert hit.model == "gpt-4o"  # whichever tier answered is what is served
    assert hit.saved == _price(meter, "gpt-4o")


def test_saved_is_priced_from_the_response_when_nothing_was_recorded() -> None:
    meter = make_test_meter()
    routing = _routing(meter, ResponseCache(meter=meter))
    calls: list[str] = []
    _serve(routing, _provider(meter, calls, record=False), step="parse")
    _serve(routing, _provider(meter, calls, record=False), step="parse")
    (hit,) = _hits(meter)
    assert hit.saved == _price(meter, "gpt-4o-mini")
    # Nor usage nor a recorded charge: served, with nothing known saved.
    other = _routing(meter, ResponseCache(meter=meter))
    codec = DictCodec(report_usage=False)
    _serve(other, _provider(meter, calls, record=False), codec=codec, step="parse")
    _serve(other, _provider(meter, calls, record=False), codec=codec, step="parse")
    assert _hits(meter)[-1].saved is None
    assert calls == ["gpt-4o-mini", "gpt-4o-mini"]


def test_only_deterministic_requests_are_cached_and_transport_is_not_keyed() -> None:
    meter = make_test_meter()
    routing = _routing(meter, ResponseCache(meter=meter))
    calls: list[str] = []
    call = _provider(meter, calls)
    sampled = {**REQUEST, "temperature": 0.7}
    _serve(routing, call, sampled, step="parse")
    _serve(routing, call, sampled, step="parse")
    assert len(calls) == 2 and not _hits(meter)
    _serve(routing, call, REQUEST, step="parse")
    _serve(routing, call, {**REQUEST, "stream": True, "timeout": 5}, step="parse")
    _serve(routing, call, {**REQUEST, "max_tokens": 10}, step="parse")  # changes the answer
    assert len(calls) == 4 and len(_hits(meter)) == 1


def test_routers_over_other_models_do_not_share_answers() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    calls: list[str] = []
    one = _routing(meter, cache)
    other = _routing(meter, cache, tiers={"economy": ["gpt-4o-mini"], "premium": ["gpt-4.1"]})
    described = _routing(meter, cache, cache_identity={"gpt-4o-mini": {"top_p": 0.5}})
    for routing in (one, other, described, one):
        _serve(routing, _provider(meter, calls), step="parse")
    assert len(calls) == 3 and len(_hits(meter)) == 1


def test_an_unreadable_entry_is_a_miss() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    routing = _routing(meter, cache)
    calls: list[str] = []

    class Broken(DictCodec):
        def load(self, data: Any) -> dict[str, Any] | None:
            raise ValueError("not a response")

    _serve(routing, _provider(meter, calls), step="parse")
    _serve(routing, _provider(meter, calls), codec=Broken(), step="parse")
    assert len(calls) == 2 and not _hits(meter)


def test_no_cache_no_ticket() -> None:
    meter = make_test_meter()
    routing = _routing(meter, None)
    asked: list[int] = []
    ticket = routing.lookup(lambda: asked.append(1) or REQUEST, DictCodec())
    assert ticket.key is None and ticket.hit is None and asked == []  # request never built


def test_streams_are_stored_once_complete() -> None:
    meter = make_test_meter()
    routing = _routing(meter, ResponseCache(meter=meter))
    opened: list[str] = []

    def stream(model: str) -> Iterator[str]:
        opened.append(model)
        yield from ("an", "swer")

    def serve() -> list[str]:
        ticket = routing.lookup(lambda: REQUEST, ChunkCodec())
        if ticket.hit is not None:
            return ticket.hit
        plan = routing.plan("hi", attributes={"step": "parse"})
        return list(routing.run_stream(plan, stream, cache=ticket))

    abandoned = routing.run_stream(
        routing.plan("hi", attributes={"step": "parse"}),
        stream,
        cache=routing.lookup(lambda: REQUEST, ChunkCodec()),
    )
    assert next(abandoned) == "an"
    abandoned.close()
    assert serve() == ["an", "swer"]
    assert serve() == ["answer"]
    assert opened == ["gpt-4o-mini", "gpt-4o-mini"]


def test_async_paths_on_a_shared_store(tmp_path: Path) -> None:
    meter = make_test_meter()
    cache = ResponseCache(backend=f"sqlite:///{tmp_path / 'r.db'}", meter=meter)
    routing = _routing(meter, cache)
    calls: list[str] = []

    async def call(model: str) -> dict[str, Any]:
        return _provider(meter, calls)(model)

    async def chunks(model: str) -> AsyncIterator[str]:
        async def gen() -> AsyncIterator[str]:
            calls.append(model)
            for part in ("a", "b"):
                yield part

        return gen()

    async def main() -> list[Any]:
        out: list[Any] = []
        for _ in range(2):
            ticket = await routing.alookup(lambda: REQUEST, DictCodec())
            if ticket.hit is None:
                plan = await routing.aplan("hi", attributes={"step": "parse"})
                out.append(await routing.arun(plan, call, cache=ticket))
            else:
                out.append(ticket.hit)
        request = {**REQUEST, "messages": [{"role": "user", "content": "stream"}]}
        for _ in range(2):
            streamed = await routing.alookup(lambda: request, ChunkCodec())
            if streamed.hit is None:
                plan = await routing.aplan("hi", attributes={"step": "parse"})
                out.append([c async for c in routing.arun_stream(plan, chunks, cache=streamed)])
            else:
                out.append(streamed.hit)
        return out

    with meter.trace("job"):
        results = asyncio.run(main())
    cache.backend.close()
    assert results[0] == results[1]
    assert results[2:] == [["a", "b"], ["ab"]]
    assert calls == ["gpt-4o-mini", "gpt-4o-mini"]
    assert len(_hits(meter)) == 2


def test_describe_keeps_json_and_names_other_objects() -> None:
    assert describe({"a": [1, "x", None], "b": 0.5}) == {"a": [1, "x", None], "b": 0.5}
    assert describe({"client": object()}) == {"client": "<builtins.object>"}


def test_a_call_a_degrade_budget_changed_is_not_stored() -> None:
    from faremeter.budgets import Budget, BudgetManager

    budgets = BudgetManager(
        [Budget("task", limit="0.001", window="trace", action="degrade")], min_output_tokens=16
    )
    meter = make_test_meter(budgets=budgets)
    routing = _routing(meter, ResponseCache(meter=meter))
    calls: list[str] = []
    request = {**REQUEST, "max_tokens": 5000}
    with meter.trace("job"):
        for _ in range(2):
            ticket = routing.lookup(lambda: request, DictCodec())
            assert ticket.hit is None
            plan = routing.plan("hi", max_tokens=5000, attributes={"step": "parse"})
            assert plan.degraded is not None  # 5000 output tokens do not fit $0.001
            routing.run(plan, _provider(meter, calls, record=False), cache=ticket)
    assert len(calls) == 2 and not _hits(meter)
