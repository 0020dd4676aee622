"""docs/configuration.md and the pydantic config models describe the same file.

Fails when a model gains a field (or a nested model) the page does not
document, when the page documents a key or section that does not exist, when a
documented default differs from the model's, and when a ``toml`` example in the
docs does not validate.
"""

from __future__ import annotations

import re
import sys
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _docs_blocks import ROOT, doc_files, extract_blocks
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from faremeter.budgets.config import BudgetConfig, BudgetStoreConfig, parse_budget_config
from faremeter.config import (
    FaremeterConfig,
    LedgerConfig,
    PriceConfig,
    ToolPriceConfig,
    load_config,
    parse_config,
)
from faremeter.routing.config import (
    ModelOverrideConfig,
    RouteRuleConfig,
    RoutingConfig,
    TierConfig,
    parse_routing,
)

PAGE = ROOT / "docs" / "configuration.md"

# Heading of the page (the TOML header, in backticks) -> the model validating it.
SECTION_MODELS: dict[str, type[BaseModel]] = {
    "[ledger]": LedgerConfig,
    "[prices.<model>]": PriceConfig,
    "[tools.<name>]": ToolPriceConfig,
    "[[budgets]]": BudgetConfig,
    "[budget_store]": BudgetStoreConfig,
    "[routing]": RoutingConfig,
    "[routing.tiers.<name>]": TierConfig,
    "[[routing.rules]]": RouteRuleConfig,
    "[routing.models.<model>]": ModelOverrideConfig,
}
# Sections that are plain name = value maps (no keys of their own to list).
MAP_SECTIONS = {"[aliases]"}

# Top-level sections of faremeter.toml and the models that read them: the
# meter's (FaremeterConfig), the budgets' and the router's.
BUDGET_SECTIONS = {"budgets", "budget_store"}
ROUTING_SECTIONS = {"routing"}
ROOT_MODELS: tuple[type[BaseModel], ...] = (
    FaremeterConfig,
    BudgetConfig,
    BudgetStoreConfig,
    RoutingConfig,
)

_HEADING = re.compile(r"^#{2,3} `(?P<section>\[.+?\])`\s*$")
_ROW = re.compile(r"^\|\s*`(?P<key>[A-Za-z0-9_]+)`\s*\|(?P<rest>.*)\|\s*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentedKey:
    """One row of a key table: its name and its default cell (stripped)."""

    key: str
    default: str


def documented_sections() -> dict[str, list[DocumentedKey]]:
    """Section heading -> the keys of the first table under it."""
    sections: dict[str, list[DocumentedKey]] = {}
    current: str | None = None
    in_table = False
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading is not None:
            section: str = heading["section"]
            sections[section] = []
            current = section
            in_table = False
            continue
        if line.startswith("#"):
            current = None
            continue
        if current is None:
            continue
        row = _ROW.match(line)
        if row is not None:
            cells = [c.strip() for c in row["rest"].split("|")]
            sections[current].append(DocumentedKey(key=row["key"], default=cells[1]))
            in_table = True
        elif in_table and not line.startswith("|"):
            current = None  # only the first table under a heading lists keys
    return sections


def _nested_models(annotation: Any) -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.add(annotation)
    for arg in typing.get_args(annotation):
        found |= _nested_models(arg)
    return found


def _reachable(models: tuple[type[BaseModel], ...]) -> set[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    todo = list(models)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            todo.extend(_nested_models(field.annotation))
    return seen


def test_every_top_level_section_is_documented_and_exists() -> None:
    documented = {
        re.sub(r"^\[+|\]+$", "", heading).split(".")[0] for heading in documented_sections()
    }
    expected = set(FaremeterConfig.model_fields) | BUDGET_SECTIONS | ROUTING_SECTIONS
    assert documented == expected, (
        f"undocumented: {sorted(expected - documented)}; "
        f"documented but unknown: {sorted(documented - expected)}"
    )


def test_every_config_model_has_a_section() -> None:
    documented_models = set(SECTION_MODELS.values())
    for model in _reachable(ROOT_MODELS) - {FaremeterConfig}:
        assert model in documented_models, f"{model.__name__} has no section in {PAGE.name}"
    assert set(documented_sections()) == set(SECTION_MODELS) | MAP_SECTIONS


@pytest.mark.parametrize("section", sorted(SECTION_MODELS))
def test_section_lists_exactly_the_model_fields(section: str) -> None:
    model = SECTION_MODELS[section]
    keys = [row.key for row in documented_sections()[section]]
    assert len(keys) == len(set(keys)), f"{section}: a key is listed twice: {keys}"
    fields = set(model.model_fields)
    assert set(keys) == fields, (
        f"{section}: undocumented keys {sorted(fields - set(keys))}; "
        f"documented keys that {model.__name__} does not have {sorted(set(keys) - fields)}"
    )


def _adapter(field: FieldInfo) -> TypeAdapter[Any]:
    """Validates like the field: its type plus constraints and validators (``metadata``)."""
    annotated: Any = Annotated  # built at runtime from the field, not a static type
    target: Any = (
        annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    )
    return TypeAdapter[Any](target)


def _documented_default(cell: str, field: FieldInfo) -> object:
    """The default a table cell states, validated like the field would be."""
    if cell == "—":
        return None
    literal = re.fullmatch(r"`(?P<toml>[^`]+)`", cell)
    assert literal is not None, f"default cell {cell!r} must be `TOML`, 'required' or '—'"
    value = tomllib.loads(f"v = {literal['toml']}")["v"]
    return _adapter(field).validate_python(value)


@pytest.mark.parametrize("section", sorted(SECTION_MODELS))
def test_documented_defaults_match_the_model(section: str) -> None:
    model = SECTION_MODELS[section]
    for row in documented_sections()[section]:
        field = model.model_fields[row.key]
        where = f"{section} {row.key}"
        if field.is_required():
            assert row.default == "required", f"{where}: is required, the page says {row.default}"
            continue
        assert row.default != "required", f"{where}: is optional, the page says required"
        actual = field.get_default(call_default_factory=True, validated_data={})
        assert _documented_default(row.default, field) == actual, (
            f"{where}: default is {actual!r}, the page says {row.default}"
        )


# -- the TOML examples ---------------------------------------------------------------

# toml blocks in pages this test does not own that failed when it was written:
# file -> what failed (a strict xfail: delete the entry once the page is fixed).
KNOWN_BAD_TOML: dict[str, str] = {}


def validate_document(data: dict[str, Any], source: str) -> None:
    """Validate a parsed faremeter.toml with every model that reads a part of it."""
    meter_part = {k: v for k, v in data.items() if k in FaremeterConfig.model_fields}
    other = set(data) - set(meter_part) - BUDGET_SECTIONS - ROUTING_SECTIONS
    assert not other, f"{source}: unknown sections {sorted(other)}"
    parse_config(meter_part, source=source)
    catalog = None
    if meter_part:
        from faremeter.pricing import PriceCatalog

        catalog = PriceCatalog.from_config(parse_config(meter_part, source=source))
    parse_budget_config(data, source=source)
    if "routing" in data:
        parse_routing(data["routing"], catalog=catalog, source=source)


def _toml_params() -> list[object]:
    params: list[object] = []
    for path in doc_files():
        rel = path.relative_to(ROOT).as_posix()
        blocks = [
            b for b in extract_blocks(path.read_text(encoding="utf-8")) if b.language == "toml"
        ]
        if not blocks:
            continue
        marks = (
            [pytest.mark.xfail(strict=True, reason=KNOWN_BAD_TOML[rel])]
            if rel in KNOWN_BAD_TOML
            else []
        )
        params.append(pytest.param(rel, id=rel, marks=marks))
    return params


@pytest.mark.parametrize("rel", _toml_params())
def test_toml_examples_validate(rel: str) -> None:
    for block in extract_blocks((ROOT / rel).read_text(encoding="utf-8")):
        if block.language != "toml" or block.not_run is not None:
            continue
        validate_document(tomllib.loads(block.code), f"{rel}:{block.line}")


def test_a_bad_example_is_caught() -> None:
    with pytest.raises(Exception, match="unknown key"):
        validate_document(tomllib.loads("[ledger]\nurl = 'memory'\nqueue = 3\n"), "x")
    with pytest.raises(AssertionError, match="unknown sections"):
        validate_document({"cache": {}}, "x")
    with pytest.raises(Exception, match=r"routing\.tiers"):
        validate_document(tomllib.loads("[routing.tiers]\neconomy = ['gpt4o']\n"), "x")


def test_the_complete_example_loads_as_one_file(tmp_path: Path) -> None:
    blocks = [b for b in extract_blocks(PAGE.read_text(encoding="utf-8")) if b.language == "toml"]
    complete = blocks[0].code
    assert {"[ledger]", "[[budgets]]", "[budget_store]", "[routing]"} <= set(complete.splitlines())
    path = tmp_path / "faremeter.toml"
    path.write_text(complete, encoding="utf-8")
    config = load_config(path)
    assert config.ledger.queue_size == 100_000
    assert [b.name for b in config.budgets] == ["per-user-daily", "sales-monthly"]
    assert config.routing is not None
    assert parse_routing(config.routing).default_tier == "standard"


def test_documented_sections_parser_sees_the_tables() -> None:
    sections = documented_sections()
    assert [r.key for r in sections["[ledger]"]] == ["url", "queue_size", "store_content"]
    assert sections["[aliases]"] == []
