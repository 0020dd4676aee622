"""The ``--since`` windows the analytics commands accept."""

from __future__ import annotations

from datetime import timedelta

__all__ = ["WINDOWS"]

WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
