"""`PriceCatalog`: model and tool prices, resolution of names, and pricing a call.

A catalog is immutable: :meth:`PriceCatalog.with_overrides` returns a new one,
so a catalog shared by threads never changes under a running call, and a
ledger entry can always say which table priced it. Resolution results are
cached per name, so after the first call for a name pricing is one dict lookup
plus a few Decimal multiplications.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from faremeter.cost import Cost
from faremeter.errors import ConfigError, UnknownModelError
from faremeter.pricing.model_price import ModelPrice
from faremeter.pricing.resolve import SuggestionIndex, candidates, close_matches
from faremeter.pricing.snapshot import Snapshot, load_snapshot
from faremeter.pricing.tools import ToolPrice
from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.config import FaremeterConfig

__all__ = ["PriceCatalog"]

_RESOLVE_CACHE_MAX: Final = 10_000
_ALIAS_DEPTH: Final = 8


class _SnapshotTable:
    """Snapshot entries, turned into :class:`ModelPrice` one model at a time.

    Shared by every catalog derived from the same snapshot, so the work of
    building a model's prices is done once per process.
    """

    __slots__ = ("_built", "_lock", "raw", "version")

    def __init__(self, snapshot: Snapshot) -> None:
        self.raw = snapshot.models
        self.version = snapshot.version
        self._built: dict[str, ModelPrice] = {}
        self._lock = threading.Lock()

    def get(self, model_id: str) -> ModelPrice | None:
        price = self._built.get(model_id)
        if price is not None:
            return price
        entry = self.raw.get(model_id)
        if entry is None:
            return None
        price = ModelPrice.from_snapshot(entry, version=self.version)
        with self._lock:
            return self._built.setdefault(model_id, price)


class PriceCatalog:
    """Model prices (bundled snapshot + overrides), aliases and tool prices.

    Use :meth:`default` for the bundled snapshot; add your own prices with
    :meth:`with_overrides` or :meth:`from_config`.

    Attributes:
        price_version: The bundled table this catalog is based on, e.g.
            ``litellm-1.106.2@2026-11-23`` (``override`` for a catalog of
            user prices only). Per model, ``catalog.get(m).version`` says
            whether a price came from the snapshot or an override.
    """

    __slots__ = (
        "_aliases",
        "_hot",
        "_lower",
        "_models",
        "_resolved",
        "_suggest",
        "_table",
        "_tools",
        "price_version",
    )

    _default: PriceCatalog | None = None
    _default_lock: Final = threading.Lock()

    def __init__(
        self,
        *,
        models: Mapping[str, ModelPrice | Sequence[ModelPrice]] | None = None,
        aliases: Mapping[str, str] | None = None,
        tools: Mapping[str, ToolPrice] | None = None,
        include_snapshot: bool = False,
    ) -> None:
        """Build a catalog.

        Args:
            models: Model id → price, or → dated prices (see :meth:`with_overrides`).
            aliases: Name → model id (``azure/prod-gpt4o`` → ``gpt-4o``).
            tools: Tool name → price.
            include_snapshot: Start from the bundled snapshot (what
                :meth:`default` does) instead of an empty table.
        """
        self._table: _SnapshotTable | None = _snapshot_table() if include_snapshot else None
        self.price_version: str = self._table.version if self._table else "override"
        self._models: dict[str, tuple[ModelPrice, ...]] = {}
        self._aliases: dict[str, str] = {}
        self._tools: dict[str, ToolPrice] = {}
        self._reset_caches()
        self._apply(models or {}, aliases or {}, tools or {})

    # ---------------------------------------------------------------- building

    @classmethod
    def default(cls) -> PriceCatalog:
        """The bundled snapshot, shared process-wide; parsed on first call."""
        catalog = cls._default
        if catalog is None:
            with cls._default_lock:
                catalog = cls._default
                if catalog is None:
                    catalog = cls._default = cls(include_snapshot=True)
        return catalog

    @classmethod
    def from_config(
        cls, config: FaremeterConfig, *, base: PriceCatalog | None = None
    ) -> PriceCatalog:
        """``base`` (default: :meth:`default`) with a config's prices, aliases and tools.

        Raises:
            ConfigError: An alias points at a model no table knows.
        """
        catalog = base if base is not None else cls.default()
        try:
            return catalog.with_overrides(
                models=config.model_prices(),
                aliases=dict(config.aliases),
                tools=config.tool_prices(),
            )
        except UnknownModelError as exc:
            alias = next((a for a, t in config.aliases.items() if t == exc.model), exc.model)
            hint = (
                f"; did you mean {', '.join(map(repr, exc.suggestions))}?"
                if exc.suggestions
                else ""
            )
            raise ConfigError(
                f"{config.source}: aliases.{alias}: unknown model {exc.model!r}{hint}"
            ) from None

    def with_overrides(
        self,
        *,
        models: Mapping[str, ModelPrice | Sequence[ModelPrice]] | None = None,
        aliases: Mapping[str, str] | None = None,
        tools: Mapping[str, ToolPrice] | None = None,
    ) -> PriceCatalog:
        """A new catalog with these prices added; this one is unchanged.

        Args:
            models: Model id → price. An undated :class:`ModelPrice` replaces
                every price the model had; a dated one (``effective_from`` set)
                is *added* as a new version, so calls before that date keep
                the old price. A sequence replaces all versions at once.
            aliases: Name → model id or another alias. Targets must resolve.
            tools: Tool name → :class:`ToolPrice`.

        Raises:
            UnknownModelError: An alias target that resolves to nothing.
        """
        clone = object.__new__(PriceCatalog)
        clone._table = self._table
        clone.price_version = self.price_version
        clone._models = dict(self._models)
        clone._aliases = dict(self._aliases)
        clone._tools = dict(self._tools)
        clone._reset_caches()
        clone._apply(models or {}, aliases or {}, tools or {})
        return clone

    def _reset_caches(self) -> None:
        self._resolved: dict[str, str] = {}
        self._hot: dict[str, tuple[str, ModelPrice]] = {}
        self._lower: dict[str, str] | None = None
        self._suggest: SuggestionIndex | None = None

    def _apply(
        self,
        models: Mapping[str, ModelPrice | Sequence[ModelPrice]],
        aliases: Mapping[str, str],
        tools: Mapping[str, ToolPrice],
    ) -> None:
        for model_id, value in models.items():
            if not isinstance(model_id, str) or not model_id.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
                raise ValueError(f"model id must be a non-empty string, got {model_id!r}")
            if isinstance(value, ModelPrice):
                if value.effective_from is None:
                    versions: tuple[ModelPrice, ...] = (value,)
                else:
                    existing = [
                        p
                        for p in self._versions(model_id)
                        if p.effective_from != value.effective_from
                    ]
                    versions = (*existing, value)
            else:
                versions = tuple(value)
                if not versions or not all(
                    isinstance(v, ModelPrice)  # pyright: ignore[reportUnnecessaryIsInstance]
                    for v in versions
                ):
                    raise ValueError(f"{model_id}: expected a ModelPrice or a list of them")
            self._models[model_id] = _sorted_versions(model_id, versions)
        for tool, price in tools.items():
            if not isinstance(price, ToolPrice):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise ValueError(f"tools.{tool}: expected a ToolPrice, got {type(price).__name__}")
            self._tools[tool] = price
        for alias, target in aliases.items():
            self._aliases[alias.strip().lower()] = target.strip()
        self._lower = None
        self._suggest = None
        for target in aliases.values():
            self.resolve(target.strip())  # fail now, not on the first priced call

    # -------------------------------------------------------------- resolution

    def resolve(self, model: str) -> str:
        """The catalog id ``model`` is priced as.

        Tries, in order: user aliases; the exact id; a case-insensitive match;
        the name without a snapshot date (``-2024-08-06``, ``-20241022``,
        ``@20240620``, ``-0613``) when the dated id has no price of its own;
        then the same without each leading ``provider/`` segment.

        Raises:
            UnknownModelError: Nothing matched; carries the closest known ids.
        """
        hit = self._resolved.get(model)
        if hit is not None:
            return hit
        if not isinstance(model, str) or not model.strip():  # pyright: ignore[reportUnnecessaryIsInstance] - untyped callers
            raise UnknownModelError(repr(model))
        name = model.strip()
        seen: set[str] = set()
        for _ in range(_ALIAS_DEPTH):
            target = self._aliases.get(name.lower())
            if target is None or name.lower() in seen:
                break
            seen.add(name.lower())
            name = target
        found = self._find(name)
        if found is None and name != model.strip():
            found = self._find(model.strip())
        if found is None:
            found = self._find_by_tail(name)
        if found is None:
            raise UnknownModelError(model, close_matches(model, self._suggestion_index()))
        if len(self._resolved) >= _RESOLVE_CACHE_MAX:
            self._resolved.clear()  # names are unbounded input; the cache is not
        self._resolved[model] = found
        return found

    def _find(self, name: str) -> str | None:
        for candidate in candidates(name):
            if candidate in self._models or (self._table and candidate in self._table.raw):
                return candidate
            lowered = self._lower_map().get(candidate.lower())
            if lowered is not None:
                return lowered
            alias = self._aliases.get(candidate.lower())
            if alias is not None and alias.lower() != name.lower():
                found = self._find(alias)
                if found is not None:
                    return found
        return None

    def _find_by_tail(self, name: str) -> str | None:
        """A bare name that only a provider-prefixed id carries, when unambiguous.

        ``claude-3-5-sonnet@20240620`` exists only as ``vertex_ai/claude-3-5-sonnet@20240620``;
        a framework that reports the bare name should still be priced, but
        only if exactly one id ends that way (no guessing between providers).
        """
        if "/" in name:
            return None
        suffix = "/" + name.lower()
        for candidate in candidates(name):
            suffix = "/" + candidate.lower()
            matches = [k for k in self._lower_map() if k.endswith(suffix)]
            if len(matches) == 1:
                return self._lower_map()[matches[0]]
            if matches:
                return None
        return None

    def _lower_map(self) -> dict[str, str]:
        lower = self._lower
        if lower is None:
            lower = dict[str, str]()
            if self._table:
                for key in self._table.raw:
                    lower.setdefault(key.lower(), key)
            for key in self._models:
                lower[key.lower()] = key  # user prices win over the snapshot
            self._lower = lower
        return lower

    def _suggestion_index(self) -> SuggestionIndex:
        index = self._suggest
        if index is None:
            index = self._suggest = SuggestionIndex(self._all_ids())
        return index

    def _all_ids(self) -> Iterator[str]:
        yield from self._models
        if self._table:
            yield from self._table.raw
        yield from self._aliases

    def ids(self) -> list[str]:
        """Every model id the catalog can price (snapshot and overrides), sorted."""
        known = set(self._models)
        if self._table:
            known.update(self._table.raw)
        return sorted(known)

    def _versions(self, model_id: str) -> tuple[ModelPrice, ...]:
        versions = self._models.get(model_id)
        if versions is not None:
            return versions
        if self._table:
            price = self._table.get(model_id)
            if price is not None:
                return (price,)
        return ()

    # ---------------------------------------------------------------- lookups

    def get(self, model: str, *, at: dt.datetime | None = None) -> ModelPrice:
        """The price of ``model`` in force at ``at`` (default: now).

        Raises:
            UnknownModelError: The name does not resolve, or the model has no
                price in force at that time.
        """
        model_id = self.resolve(model)
        versions = self._versions(model_id)
        when = _utc(at) if at is not None else dt.datetime.now(dt.UTC)
        in_force: ModelPrice | None = None
        for price in versions:  # ascending by effective_from; None first
            if price.effective_from is None or price.effective_from <= when:
                in_force = price
        if in_force is None:
            raise UnknownModelError(f"{model} (no price in force at {when.isoformat()})")
        return in_force

    def cost(
        self, model: str, usage: Usage, *, batch: bool = False, at: dt.datetime | None = None
    ) -> Cost:
        """Price one call.

        Args:
            model: Any name :meth:`resolve` understands.
            usage: Token counts, OpenAI convention (input includes cache tokens).
            batch: Bill at batch-API rates.
            at: Price as of this time (for dated prices); default now.

        Returns:
            The cost, split by input / cache read / cache write / output /
            reasoning, with ``Cost.model`` set to the resolved id.

        Raises:
            UnknownModelError: The model cannot be priced.
        """
        if at is None:
            hot = self._hot.get(model)
            if hot is not None:
                return hot[1]._cost(usage, batch, hot[0])  # pyright: ignore[reportPrivateUsage]
        return self._cost_slow(model, usage, batch, at)

    def _cost_slow(self, model: str, usage: Usage, batch: bool, at: dt.datetime | None) -> Cost:
        price = self.get(model, at=at)
        model_id = self.resolve(model)
        if at is None and _stable(self._versions(model_id)):
            if len(self._hot) >= _RESOLVE_CACHE_MAX:
                self._hot.clear()
            self._hot[model] = (model_id, price)
        return price.cost(usage, batch=batch, model=model_id)

    def tool_price(self, name: str) -> ToolPrice | None:
        """The configured price of a tool, or ``None``."""
        return self._tools.get(name)

    def tool_cost(self, name: str, calls: int = 1, units: int | Decimal | None = None) -> Cost:
        """The cost of ``calls`` calls of tool ``name`` consuming ``units`` units.

        An unconfigured tool is *unpriced* (``Cost.unpriced``), never $0.
        """
        price = self._tools.get(name)
        if price is None:
            return Cost.unpriced(f"no price configured for tool {name!r}")
        return price.cost(name, calls=calls, units=units)

    def __contains__(self, model: object) -> bool:
        if not isinstance(model, str):
            return False
        try:
            self.resolve(model)
        except UnknownModelError:
            return False
        return True

    def __repr__(self) -> str:
        size = len(self._table.raw) if self._table else 0
        return (
            f"PriceCatalog(version={self.price_version!r}, snapshot_models={size},"
            f" overrides={len(self._models)}, aliases={len(self._aliases)},"
            f" tools={len(self._tools)})"
        )


@functools.cache
def _snapshot_table() -> _SnapshotTable:
    return _SnapshotTable(load_snapshot())


def _sorted_versions(model_id: str, versions: Sequence[ModelPrice]) -> tuple[ModelPrice, ...]:
    dates = [v.effective_from for v in versions]
    if dates.count(None) > 1 or len({d for d in dates if d is not None}) != len(
        [d for d in dates if d]
    ):
        raise ValueError(f"{model_id}: two prices share the same effective_from")
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return tuple(sorted(versions, key=lambda v: v.effective_from or epoch))


def _stable(versions: Sequence[ModelPrice]) -> bool:
    """True when the newest version is already in force, so "now" cannot change it."""
    if not versions:
        return False
    newest = versions[-1].effective_from
    return newest is None or newest <= dt.datetime.now(dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
