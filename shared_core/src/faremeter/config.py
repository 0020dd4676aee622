"""``faremeter.toml``: user prices, aliases, tool prices and ledger settings.

Loaded with :func:`load_config`. The file is found from the ``path`` argument,
else the ``FAREMETER_CONFIG`` environment variable, else ``./faremeter.toml``
when it exists, else built-in defaults. Validation uses pydantic (frozen models,
unknown keys rejected) and every problem becomes one :class:`ConfigError` whose
message names the file, the dotted key and the reason, e.g.::

    faremeter.toml: prices.my-model.input_per_mtok: must be >= 0, got -1

This module is the only place faremeter imports pydantic, and it is imported
only when a config is loaded, so ``import faremeter`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from faremeter.budgets.config import BudgetConfig, BudgetStoreConfig, budgets_from_config
from faremeter.errors import ConfigError
from faremeter.pricing.model_price import ModelPrice
from faremeter.pricing.tools import ToolPrice

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "FaremeterConfig",
    "LedgerConfig",
    "PriceConfig",
    "ToolPriceConfig",
    "load_config",
]

CONFIG_ENV_VAR = "FAREMETER_CONFIG"
DEFAULT_CONFIG_FILE = "faremeter.toml"


def _price(value: object) -> Decimal:
    """A price in USD: finite, non-negative, exact (floats via ``repr``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        result = Decimal(repr(value))
    elif isinstance(value, int | Decimal):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"must be a number, got {value!r}") from None
    else:
        raise ValueError(f"must be a number, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise ValueError(f"must be a finite number, got {value}")
    if result < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return result


Price = Annotated[Decimal, BeforeValidator(_price)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class PriceConfig(_Frozen):
    """``[prices.<model>]``: a user price, per million tokens."""

    input_per_mtok: Price
    output_per_mtok: Price
    cache_read_per_mtok: Price | None = None
    cache_write_per_mtok: Price | None = None
    cache_write_1h_per_mtok: Price | None = None
    reasoning_per_mtok: Price | None = None
    batch_input_per_mtok: Price | None = None
    batch_output_per_mtok: Price | None = None
    provider: str | None = None
    mode: str | None = None
    max_input_tokens: Annotated[int, Field(gt=0)] | None = None
    max_output_tokens: Annotated[int, Field(gt=0)] | None = None
    capabilities: tuple[str, ...] = ()
    effective_from: dt.datetime | dt.date | None = None

    def to_model_price(self) -> ModelPrice:
        """The :class:`ModelPrice` the catalog uses."""
        return ModelPrice(
            input_per_mtok=self.input_per_mtok,
            output_per_mtok=self.output_per_mtok,
            cache_read_per_mtok=self.cache_read_per_mtok,
            cache_write_per_mtok=self.cache_write_per_mtok,
            cache_write_1h_per_mtok=self.cache_write_1h_per_mtok,
            reasoning_per_mtok=self.reasoning_per_mtok,
            batch_input_per_mtok=self.batch_input_per_mtok,
            batch_output_per_mtok=self.batch_output_per_mtok,
            provider=self.provider,
            mode=self.mode,
            max_input_tokens=self.max_input_tokens,
            max_output_tokens=self.max_output_tokens,
            capabilities=self.capabilities,
            effective_from=self.effective_from,
        )


class ToolPriceConfig(_Frozen):
    """``[tools.<name>]``: ``price_per_call`` and/or ``price_per_unit`` (+ ``unit``)."""

    price_per_call: Price | None = None
    price_per_unit: Price | None = None
    unit: str = "unit"

    @field_validator("unit")
    @classmethod
    def _unit_named(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    def to_tool_price(self) -> ToolPrice:
        """The :class:`ToolPrice` the catalog uses."""
        return ToolPrice(
            price_per_call=self.price_per_call, price_per_unit=self.price_per_unit, unit=self.unit
        )


class LedgerConfig(_Frozen):
    """``[ledger]``: where spans go and what is kept."""

    url: str | None = None
    queue_size: Annotated[int, Field(gt=0)] = 100_000
    store_content: bool = False


class FaremeterConfig(_Frozen):
    """The whole ``faremeter.toml``. Unknown sections are errors, never ignored.

    Attributes:
        source: Where it was read from (a path, or ``<defaults>``), for messages.
    """

    prices: dict[str, PriceConfig] = Field(default_factory=dict[str, PriceConfig])
    aliases: dict[str, str] = Field(default_factory=dict[str, str])
    tools: dict[str, ToolPriceConfig] = Field(default_factory=dict[str, ToolPriceConfig])
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    budgets: list[BudgetConfig] = Field(default_factory=list[BudgetConfig])
    budget_store: BudgetStoreConfig = Field(default_factory=BudgetStoreConfig)
    routing: dict[str, Any] | None = None
    _source: str = PrivateAttr(default="<defaults>")

    @property
    def source(self) -> str:
        """The file this config came from, or ``<defaults>``."""
        return self._source

    def model_prices(self) -> dict[str, ModelPrice]:
        """``[prices]`` as catalog prices."""
        return {name: p.to_model_price() for name, p in self.prices.items()}

    def tool_prices(self) -> dict[str, ToolPrice]:
        """``[tools]`` as catalog tool prices."""
        return {name: t.to_tool_price() for name, t in self.tools.items()}


def _config_path(path: str | os.PathLike[str] | None) -> Path | None:
    if path is not None:
        return Path(path)
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        return Path(env)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _describe(error: Any) -> tuple[str, str]:
    """(dotted key, reason) for one pydantic error, in words a user can act on."""
    loc = ".".join(str(part) for part in error["loc"])
    kind: str = error["type"]
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind == "missing":
        return loc, "required key is missing"
    message: str = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return loc, message
    value = error.get("input")
    return loc, f"{message[:1].lower()}{message[1:]}, got {value!r}"


def parse_config(data: dict[str, Any], *, source: str = "<defaults>") -> FaremeterConfig:
    """Validate an already-parsed TOML document.

    Raises:
        ConfigError: Naming ``source``, the dotted key and the reason.
    """
    known = set(FaremeterConfig.model_fields)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{source}: {unknown[0]}: unknown section (expected one of: {', '.join(sorted(known))})"
        )
    try:
        config = FaremeterConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()]
        first_key, first_reason = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        message = f"{source}: {first_key}: {first_reason}{more}"
        if len(problems) > 1:
            message += "".join(f"\n  {source}: {k}: {r}" for k, r in problems[1:])
        raise ConfigError(message) from None
    for name, target in config.aliases.items():
        if not name or not target:
            raise ConfigError(f"{source}: aliases.{name}: alias and target must be non-empty")
    for name, tool in config.tools.items():
        if tool.price_per_call is None and tool.price_per_unit is None:
            raise ConfigError(f"{source}: tools.{name}: needs price_per_call and/or price_per_unit")
    budgets_from_config(config.budgets, source=source)  # ConfigError: file, budgets.<i>, reason
    config._source = source  # pyright: ignore[reportPrivateUsage]
    if config.routing is not None:
        # Validated now (unknown model, empty tier, rule pointing nowhere), so a
        # broken [routing] fails at load, naming file, key and reason.
        from faremeter.pricing import PriceCatalog
        from faremeter.routing.config import parse_routing

        parse_routing(config.routing, catalog=PriceCatalog.from_config(config), source=source)
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> FaremeterConfig:
    """Read ``faremeter.toml``.

    Args:
        path: The file. Default: ``$FAREMETER_CONFIG``, else ``./faremeter.toml``
            if it exists, else built-in defaults (no file needed).

    Raises:
        ConfigError: The file is missing (when named explicitly), is not valid
            TOML, or has a bad value; the message names file, key and reason.
    """
    config_path = _config_path(path)
    if config_path is None:
        return FaremeterConfig()
    source = str(config_path)
    try:
        raw = config_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return parse_config(data, source=source)
