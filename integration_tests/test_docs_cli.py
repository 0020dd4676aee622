"""docs/cli.md documents every ``faremeter`` command and option, and nothing else.

The reference is written by hand (prose reads better than ``--help`` dumps);
this test holds it to the real argument parser, so a command or option added
to the CLI fails here until it is documented.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from faremeter.cli import build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
_HEADING = re.compile(r"^## `faremeter (?P<command>[a-z-]+)`\s*$", re.MULTILINE)
_ROW_FIRST_CELL = re.compile(r"^\|\s*(?P<cell>`[^|]+)\|", re.MULTILINE)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:  # pyright: ignore[reportPrivateUsage]
        if isinstance(action, argparse._SubParsersAction):  # pyright: ignore[reportPrivateUsage]
            choices: dict[str, argparse.ArgumentParser] = action.choices  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
            return choices
    raise AssertionError("faremeter's parser has no subcommands")


def _sections() -> dict[str, str]:
    text = PAGE.read_text(encoding="utf-8")
    matches = list(_HEADING.finditer(text))
    return {
        m["command"]: text[m.end() : matches[i + 1].start() if i + 1 < len(matches) else len(text)]
        for i, m in enumerate(matches)
    }


def _expected_names(parser: argparse.ArgumentParser) -> set[str]:
    """Long options (short ones only when there is no long one) and positionals."""
    names: set[str] = set()
    for action in parser._actions:  # pyright: ignore[reportPrivateUsage]
        if isinstance(action, argparse._HelpAction):  # pyright: ignore[reportPrivateUsage]
            continue
        if action.option_strings:
            names.update(o for o in action.option_strings if o.startswith("--"))
            if not any(o.startswith("--") for o in action.option_strings):
                names.update(action.option_strings)
        else:
            names.add(str(action.metavar or action.dest))
    return names


def _documented_names(section: str) -> set[str]:
    """The option names in the first cell of each table row of a section."""
    names: set[str] = set()
    for row in _ROW_FIRST_CELL.finditer(section):
        for code in re.findall(r"`([^`]+)`", row["cell"]):
            names.add(code.split()[0])
    return names


def test_every_command_has_a_section_and_no_other() -> None:
    assert set(_sections()) == set(_subcommands())


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_section_lists_exactly_the_options(command: str) -> None:
    section = _sections().get(command)
    assert section is not None, f"docs/cli.md has no '## `faremeter {command}`' section"
    expected = _expected_names(_subcommands()[command])
    documented = _documented_names(section)
    short = {o for o in documented if re.fullmatch(r"-[a-z]", o)}
    assert documented - short == expected, (
        f"faremeter {command}: undocumented {sorted(expected - documented)}; "
        f"documented but not in the CLI {sorted(documented - short - expected)}"
    )


def test_overview_table_links_every_command() -> None:
    text = PAGE.read_text(encoding="utf-8")
    linked = set(re.findall(r"\[`([a-z-]+)`\]\(#faremeter-\1\)", text))
    assert linked == set(_subcommands())
