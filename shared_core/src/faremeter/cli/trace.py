"""``faremeter trace <id>``: one run as a tree with direct, child and total cost."""

from __future__ import annotations

import argparse
from typing import Any

from faremeter.cli._render import money


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser("trace", help="print one trace as a cost tree")
    p.add_argument("trace_id", help="the trace id (as printed by `demo` or `report`)")
    p.add_argument(
        "--ledger", help="ledger url (default: FAREMETER_LEDGER_URL or .faremeter/ledger.db)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tree; exit 1 if the trace is unknown."""
    from rich.console import Console
    from rich.tree import Tree

    from faremeter.meter import Meter
    from faremeter.tree import TraceNode

    console = Console()
    meter = Meter(ledger=args.ledger)
    tree = meter.ledger.trace_tree(args.trace_id)
    meter.close()
    if not tree.roots:
        console.print(f"[red]No trace {args.trace_id!r} in the ledger.[/red]")
        return 1

    def label(node: TraceNode) -> str:
        s = node.span
        parts = [f"[bold]{s.name}[/bold] [dim]{s.kind.value}[/dim]"]
        if s.model:
            parts.append(s.model)
        if s.usage is not None:
            est = " est." if s.usage.estimated else ""
            parts.append(f"{s.usage.input_tokens:,} in / {s.usage.output_tokens:,} out{est}")
        direct = s.cost.total
        parts.append(f"direct {money(direct)}")
        if node.children:
            parts.append(
                f"children {money(node.child_cost)} total [bold]{money(node.total_cost)}[/bold]"
            )
        if s.status.value != "ok":
            parts.append(f"[red]{s.status.value}[/red]")
        return "  ".join(parts)

    def add(branch: Tree, node: TraceNode) -> None:
        for child in node.children:
            add(branch.add(label(child)), child)

    for root in tree.roots:
        rich_tree = Tree(label(root))
        add(rich_tree, root)
        console.print(rich_tree)
    console.print(f"trace total {money(tree.total_cost)}"
                  + (f", {tree.unpriced} unpriced spans" if tree.unpriced else ""))  # fmt: skip
    return 0
