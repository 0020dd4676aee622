"""`faremeter trace`."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser("trace", help="(not yet available)")
    p.set_defaults(func=lambda _args: print("not yet available") or 1)
