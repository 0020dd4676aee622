"""The process-wide meter adapters use when they are given none.

One rule for where spans go: an adapter handed a meter records into it;
otherwise into the process default, which is the first ``Meter`` the
application created (so ``meter = Meter()`` plus a bare handler just works),
or — if none was created — one built on first use from ``faremeter.toml`` /
``FAREMETER_CONFIG`` / the environment exactly as ``Meter.from_config()``.
:func:`set_meter` overrides both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faremeter.meter import Meter

__all__ = ["get_meter", "set_meter"]

_default_meter: Meter | None = None
_explicit = False
_default_lock = threading.Lock()
_factory: Callable[[], Meter] | None = None


def set_factory(factory: Callable[[], Meter]) -> None:
    """How :func:`get_meter` builds a meter when none exists (``faremeter.meter`` sets it).

    A registered factory rather than an import keeps this module free of a
    dependency on the meter module, which depends on this one.
    """
    global _factory
    _factory = factory


def get_meter() -> Meter:
    """The process-wide meter (the first one created, or one built from config on first use)."""
    global _default_meter
    meter = _default_meter
    if meter is None:
        if _factory is None:  # pragma: no cover - faremeter/__init__ imports the meter
            raise RuntimeError("faremeter.meter is not imported; import faremeter first")
        with _default_lock:
            if _default_meter is None:
                _default_meter = _factory()
            meter = _default_meter
    return meter


def set_meter(meter: Meter | None) -> Meter | None:
    """Install ``meter`` as the process-wide default; returns the previous one.

    ``None`` clears it: the next :func:`get_meter` adopts the next meter the
    application creates, or builds one from configuration.
    """
    global _default_meter, _explicit
    with _default_lock:
        previous, _default_meter = _default_meter, meter
        _explicit = meter is not None
    return previous


def adopt(meter: Meter) -> None:
    """Make ``meter`` the default if the application has not chosen one yet.

    Called by ``Meter()`` itself: the first meter an application builds is the
    one its handlers should record into.
    """
    global _default_meter
    if _default_meter is None:
        with _default_lock:
            if _default_meter is None:
                _default_meter = meter


def forget(meter: Meter) -> None:
    """Stop using a closed meter as the default, unless the application set it explicitly."""
    global _default_meter
    with _default_lock:
        if _default_meter is meter and not _explicit:
            _default_meter = None
