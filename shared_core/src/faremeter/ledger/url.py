"""Ledger URLs: ``memory``, ``sqlite:///path``, ``postgresql://...``.

Parsing is strict — an unknown scheme or option is a
:class:`~faremeter.errors.ConfigError` naming the URL and the accepted forms —
but opening is lazy, so a database that is down or a path that cannot be
written is a storage fault the ledger reports and retries, not a crash at
start-up.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from faremeter.errors import ConfigError
from faremeter.ledger.store import LedgerStore

__all__ = ["ACCEPTED_FORMS", "store_from_url"]

ACCEPTED_FORMS = (
    "'memory', 'sqlite:///relative/path.db', 'sqlite:////absolute/path.db'"
    " (options: ?timeout=5&synchronous=FULL&table_prefix=x_), or"
    " 'postgresql://user@host:5432/db' (options: ?schema=s&table_prefix=x_"
    " plus any libpq option)"
)


def _bad(url: str, why: str) -> ConfigError:
    return ConfigError(f"ledger url {url!r}: {why}; accepted forms: {ACCEPTED_FORMS}")


def store_from_url(url: str) -> LedgerStore:
    """Build (but do not open) the store a URL names.

    Raises:
        ConfigError: For unknown schemes, missing paths or unknown options.
    """
    if not isinstance(url, str) or not url.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
        raise _bad(str(url), "empty")
    text = url.strip()
    if text in ("memory", "memory://", "mem://"):
        from faremeter.ledger.memory import MemoryStore

        return MemoryStore()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "sqlite":
        return _sqlite(url, text, options)
    if scheme in ("postgresql", "postgres"):
        return _postgres(url, parts.scheme, text, options)
    raise _bad(url, f"unknown scheme {parts.scheme!r}" if parts.scheme else "no scheme")


def _sqlite(url: str, text: str, options: dict[str, str]) -> LedgerStore:
    from faremeter.ledger.sqlite import SQLiteStore

    if not text.lower().startswith("sqlite:///"):
        raise _bad(url, "a SQLite url needs three slashes before the path")
    raw = text[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        raise _bad(url, "give a file path (use 'memory' for an in-process ledger)")
    unknown = set(options) - {"timeout", "synchronous", "table_prefix"}
    if unknown:
        raise _bad(url, f"unknown option(s) {sorted(unknown)}")
    try:
        timeout = float(options.get("timeout", "5"))
        return SQLiteStore(
            Path(raw),
            timeout=timeout,
            synchronous=options.get("synchronous", "NORMAL"),
            prefix=options.get("table_prefix", "faremeter_"),
        )
    except ValueError as exc:
        raise _bad(url, str(exc)) from None


def _postgres(url: str, scheme: str, text: str, options: dict[str, str]) -> LedgerStore:
    from faremeter.ledger.postgres import PostgresStore

    schema = options.pop("schema", None)
    prefix = options.pop("table_prefix", "faremeter_")
    options.setdefault("connect_timeout", "5")  # a blackholed host must not hang the writer
    parts = urlsplit(text)
    conninfo = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(options), parts.fragment)
    )
    del scheme
    try:
        return PostgresStore(conninfo, schema=schema or None, prefix=prefix)
    except ValueError as exc:
        raise _bad(url, str(exc)) from None
