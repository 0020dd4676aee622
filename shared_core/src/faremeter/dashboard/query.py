"""What every dashboard panel is asked: a time window and attribute filters.

The page sends the same query string to every panel's endpoint
(``?window=24h&attr.team=search``), so each panel answers for the same
slice of the ledger and the numbers add up across panels. Parsing lives
here, apart from the web framework, so the JSON functions in
:mod:`faremeter.dashboard.api` can be called (and tested) directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from faremeter.ledger.filters import resolve

__all__ = ["ATTR_PREFIX", "WINDOWS", "PanelQuery", "parse_query"]

WINDOWS: Mapping[str, timedelta | None] = MappingProxyType(
    {
        "15m": timedelta(minutes=15),
        "1h": timedelta(hours=1),
        "24h": timedelta(days=1),
        "7d": timedelta(days=7),
        "30d": timedelta(days=30),
        "all": None,
    }
)
"""Time windows the page offers, ending at the dashboard clock's "now"."""

ATTR_PREFIX = "attr."
"""Query parameters ``attr.<name>=<value>`` filter on any attribute or span field."""

_NONE_VALUE = "(none)"
"""Filter value that selects spans *without* the attribute (as ``where={k: None}``)."""

_EMPTY: Mapping[str, str | None] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True, slots=True)
class PanelQuery:
    """The slice of the ledger a panel looks at.

    Attributes:
        window: The window's name (``all`` when ``since``/``until`` were given
            explicitly or nothing was asked).
        since: Spans starting at or after this instant (aware UTC), or ``None``.
        until: Spans starting strictly before this instant, or ``None``.
        where: Attribute (or ``model``/``kind``/``status``/``tool``/``provider``)
            → text value that must match; ``None`` matches "not set".
    """

    window: str = "all"
    since: datetime | None = None
    until: datetime | None = None
    where: Mapping[str, str | None] = field(default_factory=lambda: _EMPTY)

    def where_or_none(self) -> Mapping[str, str | None] | None:
        """``where`` as the ledger queries take it (``None`` when empty)."""
        return dict(self.where) if self.where else None

    def to_json(self) -> dict[str, object]:
        """The query echoed back in every response, so the page can show what it sees."""
        return {
            "window": self.window,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "where": dict(self.where),
        }


def _parse_instant(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}={text!r} is not an ISO-8601 date/time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def parse_query(params: Mapping[str, str], now: datetime) -> PanelQuery:
    """Turn URL query parameters into a :class:`PanelQuery`.

    Args:
        params: ``window`` (one of :data:`WINDOWS`), optional ``since`` /
            ``until`` (ISO-8601; naive means UTC) and any number of
            ``attr.<name>=<value>`` filters (``(none)`` selects spans without it).
            Unknown parameters are ignored so the page can carry its own state.
        now: The end of a named window (the dashboard's injectable clock).

    Raises:
        ValueError: Naming the parameter that is wrong.
    """
    window = params.get("window") or "all"
    if window not in WINDOWS:
        raise ValueError(f"window={window!r} is not one of {', '.join(WINDOWS)}")
    span = WINDOWS[window]
    since = None if span is None else now - span
    until = None
    if params.get("since"):
        since = _parse_instant("since", params["since"])
    if params.get("until"):
        until = _parse_instant("until", params["until"])
    if since is not None and until is not None and until <= since:
        raise ValueError("until must be after since")
    where: dict[str, str | None] = {}
    for key, value in params.items():
        if not key.startswith(ATTR_PREFIX):
            continue
        name = key[len(ATTR_PREFIX) :]
        resolve(name)  # raises ValueError naming a bad attribute
        if value == "":
            continue
        where[name] = None if value == _NONE_VALUE else value
    return PanelQuery(
        window=window,
        since=since,
        until=until,
        where=MappingProxyType(where) if where else _EMPTY,
    )
