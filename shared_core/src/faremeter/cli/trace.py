"""``faremeter trace <id or prefix>``: one run as a tree with direct, child and total cost."""

from __future__ import annotations

import argparse
from typing import Any

from faremeter.cli._context import CliError, add_meter_options, open_meter
from faremeter.cli._render import money


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser("trace", help="print one trace as a cost tree")
    p.add_argument(
        "trace_id",
        help="the trace id as printed by `demo` or `report`, or any unique prefix of it",
    )
    add_meter_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tree (one clear error line if the id is unknown or ambiguous)."""
    from rich.console import Console
    from rich.tree import Tree

    from faremeter.tree import TraceNode

    meter = open_meter(args)
    try:
        try:
            trace_id = meter.ledger.resolve_trace_id(args.trace_id)
        except (LookupError, ValueError) as exc:
            raise CliError(str(exc.args[0]) if exc.args else str(exc)) from None
        tree = meter.ledger.trace_tree(trace_id)
    finally:
        meter.close()
    console = Console(width=max(Console().width, 120))

    def label(node: TraceNode) -> str:
        s = node.span
        parts = [f"[bold]{s.name}[/bold] [dim]{s.kind.value}[/dim]"]
        step = s.attributes.get("step")
        if step is not None and step != s.name:
            parts.append(f"step={step}")
        if s.model and s.model != s.name:
            parts.append(s.model)
        if s.usage is not None:
            est = " est." if s.usage.estimated else ""
            parts.append(f"{s.usage.input_tokens:,} in / {s.usage.output_tokens:,} out{est}")
        parts.append(f"direct {money(s.cost.total)}")
        if node.children:
            parts.append(
                f"children {money(node.child_cost)} total [bold]{money(node.total_cost)}[/bold]"
            )
        if s.saved:
            parts.append(f"saved {money(s.saved)}")
        if s.status.value != "ok":
            parts.append(f"[red]{s.status.value}[/red]")
        return "  ".join(parts)

    def add(branch: Tree, node: TraceNode) -> None:
        for child in node.children:
            add(branch.add(label(child)), child)

    console.print(f"trace {trace_id}")
    for root in tree.roots:
        rich_tree = Tree(label(root))
        add(rich_tree, root)
        console.print(rich_tree)
    console.print(f"trace total {money(tree.total_cost)}"
                  + (f", {tree.unpriced} unpriced spans" if tree.unpriced else ""))  # fmt: skip
    return 0
