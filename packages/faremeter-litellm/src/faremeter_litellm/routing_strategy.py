"""faremeter's router as a ``litellm.Router`` custom routing strategy.

Use this when you already run a ``litellm.Router``: its deployments, keys,
cooldowns, retries and fallbacks stay LiteLLM's, and faremeter only picks
*which* deployment of a model group serves each request — the cheapest
capable model for the request's ``step`` / ``workflow`` rules, complexity and
budget headroom, skipping deployments LiteLLM has cooled down. Without a
``litellm.Router``, use :mod:`faremeter_litellm.routed` instead.

Example:
    >>> llm_router = litellm.Router(model_list=[
    ...     {"model_name": "auto", "litellm_params": {"model": "gpt-4o-mini"}},
    ...     {"model_name": "auto", "litellm_params": {"model": "gpt-4o"}},
    ... ])
    >>> FaremeterRoutingStrategy(llm_router, Router({...}, steps={...})).install()
    >>> llm_router.completion(model="auto", messages=msgs, metadata={"step": "parse"})

The decision log (``route.model``, ``route.reason``, ``route.baseline_model``
...) is written into the request's ``metadata["faremeter"]``, so faremeter's
LiteLLM logger stamps it on the priced span of the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from litellm.types.router import CustomRoutingStrategyBase

from faremeter.errors import BudgetExceeded
from faremeter.routing.routed_call import ModelRouting, RoutePlan
from faremeter_litellm._translate import attribution
from faremeter_litellm.routed import request_capabilities

if TYPE_CHECKING:
    from litellm.router import Router as LiteLLMRouter

    from faremeter.meter import Meter
    from faremeter.routing import Router

__all__ = ["FaremeterRoutingStrategy"]

logger = logging.getLogger("faremeter.litellm")

_MODEL_INFO_KEY = "faremeter_model"


class FaremeterRoutingStrategy(CustomRoutingStrategyBase):
    """Picks a ``litellm.Router`` deployment through faremeter's :class:`~faremeter.routing.Router`.

    A deployment stands for the router model named by its
    ``model_info["faremeter_model"]``, else its ``litellm_params["model"]``
    (with or without the ``provider/`` prefix). Among the deployments LiteLLM
    considers healthy, the first of the decision's model, then its
    alternatives in order, is chosen.

    Args:
        llm_router: The LiteLLM router to serve.
        router: faremeter's router; its models are the deployments' models.
        meter: Budgets are checked on it (``None``: the process meter).
        groups: Model groups faremeter routes; others keep LiteLLM's own
            strategy (``None``: every group with a deployment faremeter knows).

    Faults of faremeter's own (anything but a budget denial) are logged and
    LiteLLM's own strategy picks instead: routing must never break the call.
    """

    def __init__(
        self,
        llm_router: LiteLLMRouter,
        router: Router,
        *,
        meter: Meter | None = None,
        groups: Collection[str] | None = None,
    ) -> None:
        self.llm_router: Any = llm_router
        self.router = router
        self.groups = None if groups is None else frozenset(groups)
        self.routing = ModelRouting(
            router, models=[c.model for c in router.candidates], meter=meter
        )
        self._known = frozenset(c.model for c in router.candidates)
        self.decisions = 0

    # ------------------------------------------------------------- installing

    def install(self) -> FaremeterRoutingStrategy:
        """``llm_router.set_custom_routing_strategy(self)``; returns ``self``."""
        self.llm_router.set_custom_routing_strategy(self)
        return self

    def uninstall(self) -> None:
        """Give the router its own strategy back."""
        for attr in ("get_available_deployment", "async_get_available_deployment"):
            self.llm_router.__dict__.pop(attr, None)

    # --------------------------------------------------------------- choosing

    def model_of(self, deployment: Mapping[str, Any]) -> str | None:
        """The router model a deployment stands for, or ``None``."""
        named = _field(deployment.get("model_info"), _MODEL_INFO_KEY)
        if isinstance(named, str) and named in self._known:
            return named
        model = _field(deployment.get("litellm_params"), "model")
        if not isinstance(model, str):
            return None
        if model in self._known:
            return model
        bare = model.partition("/")[2]
        return bare if bare in self._known else None

    def _attributes(self, request_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        md = _metadata(request_kwargs)
        return attribution({"litellm_params": {"metadata": md}, "user": request_kwargs.get("user")})

    def _plan_args(self, messages: Any, request_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        max_tokens = request_kwargs.get("max_tokens", request_kwargs.get("max_completion_tokens"))
        return {
            "capabilities": request_capabilities({**request_kwargs, "messages": messages}),
            "max_tokens": max_tokens if type(max_tokens) is int else None,
            "attributes": self._attributes(request_kwargs),
        }

    def _pick(
        self,
        plan: RoutePlan,
        deployments: Sequence[Mapping[str, Any]],
        request_kwargs: dict[str, Any],
    ) -> Mapping[str, Any] | None:
        by_model: dict[str, Mapping[str, Any]] = {}
        for d in deployments:
            name = self.model_of(d)
            if name is not None:
                by_model.setdefault(name, d)
        for model in plan.decision.candidates:
            deployment = by_model.get(model)
            if deployment is not None:
                self._stamp(plan, request_kwargs)
                self.decisions += 1
                return deployment
        return None

    @staticmethod
    def _stamp(plan: RoutePlan, request_kwargs: dict[str, Any]) -> None:
        key = "litellm_metadata" if "litellm_metadata" in request_kwargs else "metadata"
        found = request_kwargs.get(key)
        md: dict[str, Any] = (
            dict(cast("Mapping[str, Any]", found)) if isinstance(found, Mapping) else {}
        )
        theirs = md.get("faremeter")
        stamp: dict[str, Any] = (
            dict(cast("Mapping[str, Any]", theirs)) if isinstance(theirs, Mapping) else {}
        )
        stamp.update(plan.span_attributes())
        stamp.update(plan.call_attributes())
        md["faremeter"] = stamp
        request_kwargs[key] = md
        if plan.degraded is not None and plan.max_tokens is not None:
            tokens_key = (
                "max_completion_tokens"
                if "max_completion_tokens" in request_kwargs
                else "max_tokens"
            )
            request_kwargs[tokens_key] = plan.max_tokens

    def choose(
        self,
        model: str,
        deployments: Sequence[Mapping[str, Any]],
        messages: Any,
        request_kwargs: dict[str, Any],
    ) -> Mapping[str, Any] | None:
        """Route one request among ``deployments`` (already filtered for health).

        Returns ``None`` when no deployment stands for a router model.

        Raises:
            BudgetExceeded: A budget refused the request before it was sent.
        """
        if self.groups is not None and model not in self.groups:
            return None
        if not any(self.model_of(d) is not None for d in deployments):
            return None
        plan = self.routing.plan(messages, hold=False, **self._plan_args(messages, request_kwargs))
        return self._pick(plan, deployments, request_kwargs)

    async def achoose(
        self,
        model: str,
        deployments: Sequence[Mapping[str, Any]],
        messages: Any,
        request_kwargs: dict[str, Any],
    ) -> Mapping[str, Any] | None:
        """:meth:`choose` for asyncio."""
        if self.groups is not None and model not in self.groups:
            return None
        if not any(self.model_of(d) is not None for d in deployments):
            return None
        plan = await self.routing.aplan(
            messages, hold=False, **self._plan_args(messages, request_kwargs)
        )
        return self._pick(plan, deployments, request_kwargs)

    # ------------------------------------------------------- LiteLLM's interface

    def get_available_deployment(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """LiteLLM's sync hook: faremeter's choice among the healthy deployments."""
        kwargs = request_kwargs if request_kwargs is not None else {}
        try:
            healthy = self._healthy(model, messages, input, specific_deployment, kwargs)
            if isinstance(healthy, list):
                chosen = self.choose(model, healthy, messages, kwargs)  # pyright: ignore[reportUnknownArgumentType]
                if chosen is not None:
                    return chosen
            elif healthy is not None:
                return healthy  # the caller named a specific deployment
        except BudgetExceeded:
            raise
        except Exception:
            logger.exception("faremeter: routing strategy failed; LiteLLM's own strategy picks")
        router_cls: Any = self.llm_router.__class__
        fallback: Callable[..., Any] = router_cls.get_available_deployment
        return fallback(
            self.llm_router,
            model=model,
            messages=messages,
            input=input,
            specific_deployment=specific_deployment,
            request_kwargs=request_kwargs,
        )

    async def async_get_available_deployment(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """LiteLLM's async hook (the one ``acompletion`` and the proxy use)."""
        kwargs = request_kwargs if request_kwargs is not None else {}
        try:
            healthy: Any = await self.llm_router.async_get_healthy_deployments(
                model=model,
                request_kwargs=kwargs,
                messages=messages,
                input=input,
                specific_deployment=specific_deployment,
            )
            if isinstance(healthy, list):
                chosen = await self.achoose(model, healthy, messages, kwargs)  # pyright: ignore[reportUnknownArgumentType]
                if chosen is not None:
                    return chosen
            elif healthy:
                return healthy
        except BudgetExceeded:
            raise
        except Exception:
            logger.exception("faremeter: routing strategy failed; LiteLLM's own strategy picks")
        router_cls: Any = self.llm_router.__class__
        afallback: Callable[..., Any] = router_cls.async_get_available_deployment
        return await afallback(
            self.llm_router,
            model=model,
            messages=messages,
            input=input,
            specific_deployment=specific_deployment,
            request_kwargs=request_kwargs,
        )

    def _healthy(
        self,
        model: str,
        messages: Any,
        input: Any,
        specific_deployment: bool | None,
        kwargs: dict[str, Any],
    ) -> Any:
        """Deployments of the group that are not cooling down (LiteLLM's own filters)."""
        from litellm.router_utils.cooldown_handlers import get_cooldown_deployments

        router: Any = self.llm_router
        _, healthy = router._common_checks_available_deployment(
            model=model,
            messages=messages,
            input=input,
            specific_deployment=specific_deployment,
            request_kwargs=kwargs,
        )
        if not isinstance(healthy, list):
            return healthy
        cooling = get_cooldown_deployments(litellm_router_instance=router, parent_otel_span=None)
        return router._filter_cooldown_deployments(
            healthy_deployments=healthy, cooldown_deployments=cooling
        )

    def __repr__(self) -> str:
        return f"FaremeterRoutingStrategy({self.router!r})"


def _field(value: object, key: str) -> object:
    if isinstance(value, Mapping):
        return cast("Mapping[str, object]", value).get(key)
    return None


def _metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("metadata", "litellm_metadata"):
        md: Any = kwargs.get(key)
        if isinstance(md, Mapping) and md:
            return md  # pyright: ignore[reportUnknownVariableType]
    return {}
