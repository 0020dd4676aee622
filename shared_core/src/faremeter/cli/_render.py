"""Shared formatting for CLI output."""

from __future__ import annotations

from decimal import Decimal

from faremeter.cost import format_usd

__all__ = ["money"]


def money(amount: Decimal | None) -> str:
    """Dollars with enough digits for sub-cent agent costs; ``unpriced`` for None."""
    return format_usd(amount)
