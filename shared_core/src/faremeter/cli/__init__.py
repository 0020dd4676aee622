"""The ``faremeter`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``;
modules are imported only when the CLI runs, so ``import faremeter`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

_COMMANDS = (
    "budgets",
    "dashboard",
    "demo",
    "eval_router",
    "export",
    "outcomes",
    "prices",
    "report",
    "suggest",
    "trace",
    "whatif",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    from faremeter import __version__

    parser = argparse.ArgumentParser(
        prog="faremeter", description="See, cap and cut what LLM agents cost."
    )
    parser.add_argument("--version", action="version", version=f"faremeter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"faremeter.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``faremeter`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from faremeter.errors import FaremeterError

        if not isinstance(exc, FaremeterError | ValueError | OSError):
            raise
        print(f"faremeter: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
