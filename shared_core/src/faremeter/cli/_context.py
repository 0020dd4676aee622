"""One way for every command to find its config and ledger — the same as ``Meter()``.

An app that writes with ``Meter()`` (or ``Meter.from_config()``) and a
``faremeter report`` run in the same folder must read the same ledger, so the
resolution order is one function here:

* config: ``--config FILE``, else ``FAREMETER_CONFIG``, else ``./faremeter.toml``
  when it exists, else built-in defaults (a broken file is an error, never
  silently ignored);
* ledger: ``--ledger URL``, else the config's ``[ledger] url``, else
  ``FAREMETER_LEDGER_URL``, else ``sqlite:///.faremeter/ledger.db``.

Reading commands check the ledger before printing anything: a missing SQLite
file, an unwritable path or an unreachable PostgreSQL server is one clear
line on stderr within a few seconds, not a traceback or a 40-second hang.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from faremeter.errors import FaremeterError

if TYPE_CHECKING:
    from faremeter.config import FaremeterConfig
    from faremeter.meter import Meter

__all__ = [
    "CliError",
    "add_meter_options",
    "check_ledger",
    "load_cli_config",
    "open_meter",
    "parse_window",
    "positive_int",
    "since",
]

CONNECT_TIMEOUT_S = 3


class CliError(FaremeterError):
    """A problem the user can fix, printed as one line (exit status 2)."""


def add_meter_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--ledger``, identical on every command."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="faremeter.toml to use (default: $FAREMETER_CONFIG, else ./faremeter.toml)",
    )
    parser.add_argument(
        "--ledger",
        metavar="URL",
        help="ledger url (default: the config's [ledger] url, else $FAREMETER_LEDGER_URL, "
        "else sqlite:///.faremeter/ledger.db)",
    )


def load_cli_config(args: argparse.Namespace) -> FaremeterConfig:
    """The config ``Meter.from_config`` would load for these arguments."""
    from faremeter.config import load_config

    path = getattr(args, "config", None)
    return load_config(Path(path) if path else None)


def ledger_url(args: argparse.Namespace, config: FaremeterConfig) -> str:
    """The ledger URL ``Meter()`` would use for these arguments and config."""
    from faremeter.meter import DEFAULT_LEDGER_URL

    return (
        getattr(args, "ledger", None)
        or config.ledger.url
        or os.environ.get("FAREMETER_LEDGER_URL")
        or DEFAULT_LEDGER_URL
    )


def check_ledger(url: str, *, must_exist: bool) -> None:
    """Fail fast, with one line, when the ledger cannot be used.

    Raises:
        CliError: No SQLite ledger yet (``must_exist``), an unwritable
            directory, or a PostgreSQL server that does not answer within
            ``CONNECT_TIMEOUT_S``.
    """
    if url == "memory":
        if must_exist:
            raise CliError("the 'memory' ledger lives inside one process; nothing to read here")
        return
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :].split("?", 1)[0])
        if must_exist and not path.exists():
            raise CliError(
                f"no ledger at {path} yet: record something first (e.g. `faremeter demo`), "
                "or point --ledger / FAREMETER_LEDGER_URL at your app's ledger"
            )
        directory = path.parent if str(path.parent) else Path(".")
        existing = directory
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not must_exist and not os.access(existing, os.W_OK):
            raise CliError(f"cannot write the ledger at {path}: {existing} is not writable")
        if path.exists() and not os.access(path, os.R_OK):
            raise CliError(f"cannot read the ledger at {path}: permission denied")
        return
    if url.startswith(("postgresql://", "postgres://")):
        _check_postgres(url)


def _check_postgres(url: str) -> None:
    try:
        import psycopg
    except ImportError:
        raise CliError(
            "a PostgreSQL ledger needs psycopg: pip install 'faremeter[postgres]'"
        ) from None
    parts = urlsplit(url)
    options = {k: v for k, v in parse_qsl(parts.query) if k not in ("schema", "table_prefix")}
    options["connect_timeout"] = str(CONNECT_TIMEOUT_S)
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(options), ""))
    host = parts.hostname or "localhost"
    try:
        with psycopg.connect(conninfo, autocommit=True):
            pass
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(
            f"cannot reach the PostgreSQL ledger at {host}:{parts.port or 5432}: {first}"
        ) from None


def open_meter(args: argparse.Namespace, *, must_exist: bool = True, **overrides: Any) -> Meter:
    """The meter for this command, resolved exactly as ``Meter.from_config()`` does.

    Args:
        args: Parsed arguments (``--config``, ``--ledger``).
        must_exist: A reading command: the ledger must already exist.
        **overrides: Passed to the meter (e.g. ``store_content``).
    """
    from faremeter.meter import Meter

    config = load_cli_config(args)
    url = ledger_url(args, config)
    check_ledger(url, must_exist=must_exist)
    return Meter.from_config(
        getattr(args, "config", None), ledger=url, _register=False, **overrides
    )


_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_window(text: str | None) -> timedelta | None:
    """``90m``, ``24h``, ``7d``, ``2w`` → a timedelta (``None`` for no window).

    Raises:
        CliError: Anything else, with the accepted forms.
    """
    if text is None:
        return None
    raw = text.strip().lower()
    number, unit = raw[:-1], raw[-1:]
    if unit in _UNITS and number.isdigit() and int(number) > 0:
        return timedelta(seconds=int(number) * _UNITS[unit])
    raise CliError(
        f"bad window {text!r}: use a positive number and m, h, d or w (90m, 24h, 7d, 2w)"
    )


def since(text: str | None) -> datetime | None:
    """The start of the window ``text`` ends now (UTC), or ``None``."""
    window = parse_window(text)
    return None if window is None else datetime.now(UTC) - window


def positive_int(text: str) -> int:
    """Argparse type for counts such as ``--top``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
