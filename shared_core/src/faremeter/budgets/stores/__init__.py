"""Where budget counters live: in-process, SQLite (one host), Redis (a fleet).

``open_store("memory")``, ``open_store("sqlite:///budgets.db")``,
``open_store("redis://host:6379/0")``; any object with the
:class:`~faremeter.budgets.stores.base.BudgetStore` methods works too.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from faremeter.budgets.stores.base import (
    UNIT,
    BudgetStore,
    Check,
    ReserveResult,
    StoreUnavailable,
    from_units,
    to_units,
)
from faremeter.budgets.stores.memory import MemoryBudgetStore
from faremeter.errors import ConfigError

__all__ = [
    "UNIT",
    "BudgetStore",
    "Check",
    "MemoryBudgetStore",
    "ReserveResult",
    "StoreUnavailable",
    "from_units",
    "open_store",
    "to_units",
]

ACCEPTED_FORMS = (
    "'memory', 'sqlite:///relative/path.db', 'sqlite:////absolute/path.db',"
    " 'redis://host:6379/0' (option: ?prefix=faremeter:budget:) or 'rediss://...'"
)


def open_store(
    url: str | BudgetStore | None,
    *,
    timeout_s: float = 0.5,
    clock: Callable[[], int] | None = None,
) -> BudgetStore:
    """The store a URL names (or ``url`` itself when it already is a store).

    Raises:
        ConfigError: Unknown scheme or a malformed URL, naming the accepted forms.
        ImportError: ``redis://`` without redis-py installed, saying what to install.
    """
    if url is None:
        return MemoryBudgetStore(clock=clock)
    if not isinstance(url, str):
        return url
    text = url.strip()
    if text in ("memory", "memory://", "mem://"):
        return MemoryBudgetStore(clock=clock)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if not text.lower().startswith("sqlite:///") or len(text) <= len("sqlite:///"):
            raise ConfigError(
                f"budget store url {url!r}: a SQLite url needs three slashes and a path;"
                f" accepted forms: {ACCEPTED_FORMS}"
            )
        from faremeter.budgets.stores.sqlite import SQLiteBudgetStore

        path = text[len("sqlite:///") :].split("?", 1)[0]
        return SQLiteBudgetStore(path, timeout_s=timeout_s, clock=clock)
    if scheme in ("redis", "rediss", "unix"):
        from faremeter.budgets.stores.redis import RedisBudgetStore

        options = dict(parse_qsl(parts.query))
        prefix = options.pop("prefix", "faremeter:budget:")
        query = "&".join(f"{k}={v}" for k, v in options.items())
        clean = text.split("?", 1)[0] + (f"?{query}" if query else "")
        return RedisBudgetStore(clean, prefix=prefix, timeout_s=timeout_s)
    raise ConfigError(
        f"budget store url {url!r}: unknown scheme {parts.scheme!r};"
        f" accepted forms: {ACCEPTED_FORMS}"
    )
