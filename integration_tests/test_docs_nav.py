"""Every page under docs/ is in the mkdocs.yml navigation, and the nav names no missing page.

``mkdocs build --strict`` only mentions a page left out of the nav at INFO
level, so a new page would silently be unreachable from the menu.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pages(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _pages(item)]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _pages(value)]  # pyright: ignore[reportUnknownVariableType,reportUnknownMemberType]
    raise AssertionError(f"unexpected nav entry {node!r}")


def test_nav_lists_every_page_once() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _pages(config["nav"])
    assert len(nav) == len(set(nav)), f"a page is in the nav twice: {nav}"
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert set(nav) == on_disk, (
        f"not in the nav: {sorted(on_disk - set(nav))}; in the nav but missing: "
        f"{sorted(set(nav) - on_disk)}"
    )
