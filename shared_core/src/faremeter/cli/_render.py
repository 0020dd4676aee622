"""Shared formatting for CLI output."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["money"]


def money(amount: Decimal | None) -> str:
    """Dollars with enough digits for sub-cent agent costs; ``unpriced`` for None."""
    if amount is None:
        return "unpriced"
    if amount == 0:
        return "$0"
    text = f"{amount.normalize():f}"
    return f"${text}" if "." in text and len(text.split(".")[1]) >= 2 else f"${amount:.2f}"
