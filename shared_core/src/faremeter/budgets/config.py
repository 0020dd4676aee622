"""``[[budgets]]`` and ``[budget_store]`` in ``faremeter.toml``.

Example::

    [[budgets]]
    name = "per-user-daily"
    limit = "2.00"
    window = "day"            # day | month | trace | a duration: "90m", "24h", "7d"
    per = "user_id"
    timezone = "Europe/Paris"

    [[budgets]]
    name = "sales-monthly"
    limit = "500"
    scope = { team = "sales" }
    action = "throttle"
    warn_at = [0.5, 0.8, 0.9]

    [budget_store]
    url = "redis://127.0.0.1:6379/0"
    fail = "closed"           # open (default) | closed
    timeout_s = 0.5
    unpriced = "deny"         # deny (default) | allow
    throttle_max_wait_s = 30

Errors name the file, the key (``budgets.1.limit`` is the second budget's
limit) and the reason, like the rest of the config. The models plug into
``FaremeterConfig`` as ``budgets: list[BudgetConfig]`` and
``budget_store: BudgetStoreConfig``; :func:`load_budget_config` reads just these
two sections of a file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from faremeter.budgets.budget import Budget
from faremeter.errors import ConfigError

if TYPE_CHECKING:
    from faremeter.budgets.manager import BudgetManager

__all__ = [
    "BudgetConfig",
    "BudgetStoreConfig",
    "budgets_from_config",
    "load_budget_config",
    "manager_from_config",
    "parse_budget_config",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> dt.timedelta:
    """``"90m"`` / ``"24h"`` / ``"7d"`` / ``"3600s"`` as a timedelta.

    Raises:
        ValueError: For anything else, saying what is accepted.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"must be 'day', 'month', 'trace' or a duration like '90m', '24h', '7d', got {text!r}"
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _window(value: object) -> object:
    if isinstance(value, str) and value not in ("day", "month", "trace"):
        return parse_duration(value)
    return value


def _money(value: object) -> object:
    if isinstance(value, float):
        # TOML floats are how people write limits; repr keeps what they typed.
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class BudgetConfig(_Frozen):
    """One ``[[budgets]]`` entry (see :class:`~faremeter.budgets.Budget`)."""

    name: str
    limit: Annotated[str, BeforeValidator(_money)]
    window: Annotated[Literal["day", "month", "trace"] | dt.timedelta, BeforeValidator(_window)] = (
        "month"
    )
    action: Literal["deny", "degrade", "throttle", "warn"] = "deny"
    scope: dict[str, str] = Field(default_factory=dict[str, str])
    per: str | None = None
    warn_at: tuple[Annotated[str, BeforeValidator(_money)], ...] = ("0.8", "0.9")
    timezone: str = "UTC"

    def to_budget(self) -> Budget:
        """The :class:`Budget` (raises ``ValueError`` naming what is wrong)."""
        return Budget(
            self.name,
            limit=self.limit,
            window=self.window,
            action=self.action,
            scope=self.scope,
            per=self.per,
            warn_at=self.warn_at,
            timezone=self.timezone,
        )


class BudgetStoreConfig(_Frozen):
    """``[budget_store]``: where counters live and what happens when it fails."""

    url: str = "memory"
    fail: Literal["open", "closed"] = "open"
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    unpriced: Literal["deny", "allow"] = "deny"
    throttle_max_wait_s: Annotated[float, Field(ge=0)] = 30.0


class _BudgetSections(_Frozen):
    model_config = ConfigDict(frozen=True, extra="ignore")

    budgets: list[BudgetConfig] = Field(default_factory=list[BudgetConfig])
    budget_store: BudgetStoreConfig = Field(default_factory=BudgetStoreConfig)


def _describe(error: Any) -> tuple[str, str]:
    loc = ".".join(str(part) for part in error["loc"])
    kind: str = error["type"]
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind == "missing":
        return loc, "required key is missing"
    message: str = error["msg"]
    if kind == "value_error":
        return loc, message.removeprefix("Value error, ")
    return loc, f"{message[:1].lower()}{message[1:]}, got {error.get('input')!r}"


def budgets_from_config(budgets: list[BudgetConfig], *, source: str = "<defaults>") -> list[Budget]:
    """Validated :class:`Budget` objects; errors name the file and ``budgets.<i>``.

    Raises:
        ConfigError: A budget is invalid or two share a name.
    """
    out: list[Budget] = []
    seen: set[str] = set()
    for index, entry in enumerate(budgets):
        try:
            budget = entry.to_budget()
        except ValueError as exc:
            raise ConfigError(f"{source}: budgets.{index}: {exc}") from None
        if budget.name in seen:
            raise ConfigError(
                f"{source}: budgets.{index}.name: budget {budget.name!r} is defined twice"
            )
        seen.add(budget.name)
        out.append(budget)
    return out


def parse_budget_config(
    data: dict[str, Any], *, source: str = "<defaults>"
) -> tuple[list[Budget], BudgetStoreConfig]:
    """The budgets and store settings of an already-parsed TOML document.

    Other sections are ignored here (the main config validates them).

    Raises:
        ConfigError: Naming ``source``, the dotted key and the reason.
    """
    try:
        sections = _BudgetSections.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()]
        key, reason = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {key}: {reason}{more}") from None
    return budgets_from_config(sections.budgets, source=source), sections.budget_store


def load_budget_config(
    path: str | os.PathLike[str] | None = None,
) -> tuple[list[Budget], BudgetStoreConfig]:
    """Read ``[[budgets]]`` and ``[budget_store]`` from a ``faremeter.toml``.

    Args:
        path: The file; default ``$FAREMETER_CONFIG``, else ``./faremeter.toml``
            when it exists, else no budgets.

    Raises:
        ConfigError: Unreadable file, invalid TOML or a bad value.
    """
    if path is None:
        env = os.environ.get("FAREMETER_CONFIG")
        candidate = Path(env) if env else Path("faremeter.toml")
        if not candidate.is_file():
            return [], BudgetStoreConfig()
        path = candidate
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return parse_budget_config(data, source=source)


def manager_from_config(
    budgets: list[Budget],
    store: BudgetStoreConfig | None = None,
    **kwargs: Any,
) -> BudgetManager:
    """A :class:`BudgetManager` from loaded config (``kwargs``: clock, sinks, sleep...).

    Explicit keyword arguments win over the file's ``[budget_store]`` settings.
    """
    from faremeter.budgets.manager import BudgetManager

    settings = store or BudgetStoreConfig()
    options: dict[str, Any] = {
        "store": settings.url,
        "fail": settings.fail,
        "store_timeout_s": settings.timeout_s,
        "unpriced": settings.unpriced,
        "throttle_max_wait_s": settings.throttle_max_wait_s,
    }
    options.update(kwargs)
    return BudgetManager(budgets, **options)
