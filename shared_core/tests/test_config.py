"""faremeter.toml loading: sections, defaults, and errors naming file, key and reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from faremeter.config import FaremeterConfig, load_config
from faremeter.errors import ConfigError
from faremeter.pricing import PriceCatalog
from faremeter.usage import Usage

GOOD = """
[prices."gpt-5.2"]
input_per_mtok = 3
output_per_mtok = 15

[prices."gemini-3-pro"]
input_per_mtok = 2.5
output_per_mtok = 10
cache_read_per_mtok = "0.25"
provider = "gemini"
max_input_tokens = 1000000
effective_from = 2025-11-01

[aliases]
"azure/prod-gpt4o" = "gpt-4o"

[tools.web_search]
price_per_call = 0.005

[tools.read_page]
price_per_call = 0.001

[tools.crm_api]
price_per_unit = 0.10
unit = "record"

[ledger]
url = "sqlite:///tmp/x.db"
queue_size = 5000
"""


def write(tmp_path: Path, text: str, name: str = "faremeter.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_full_config_loads_and_applies(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.prices["gemini-3-pro"].input_per_mtok == Decimal("2.5")
    assert config.ledger.queue_size == 5000
    assert config.ledger.store_content is False
    catalog = PriceCatalog.from_config(config)
    assert catalog.cost("gpt-5.2", Usage(input_tokens=1_500, output_tokens=500)).total == Decimal(
        "0.012"
    )
    assert catalog.resolve("azure/prod-gpt4o") == "gpt-4o"
    assert catalog.tool_cost("web_search", calls=2).total == Decimal("0.010")
    assert catalog.tool_cost("crm_api", units=3).total == Decimal("0.30")
    assert catalog.get("gemini-3-pro").provider == "gemini"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        config.aliases = {}  # type: ignore[misc]


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAREMETER_CONFIG", raising=False)
    config = load_config()
    assert config == FaremeterConfig()
    assert config.source == "<defaults>"
    assert config.ledger.url is None and config.ledger.queue_size == 100_000


def test_env_var_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, '[aliases]\n"a" = "gpt-4o"\n')
    monkeypatch.delenv("FAREMETER_CONFIG", raising=False)
    assert load_config().aliases == {"a": "gpt-4o"}
    other = write(tmp_path, '[aliases]\n"b" = "gpt-4o"\n', name="other.toml")
    monkeypatch.setenv("FAREMETER_CONFIG", str(other))
    assert load_config().aliases == {"b": "gpt-4o"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[prices.my-model]\ninput_per_mtok = -1\noutput_per_mtok = 2\n",
            "faremeter.toml: prices.my-model.input_per_mtok: must be >= 0, got -1",
        ),
        (
            "[prices.m]\ninput_per_mtok = nan\noutput_per_mtok = 2\n",
            "faremeter.toml: prices.m.input_per_mtok: must be a finite number, got nan",
        ),
        (
            "[prices.m]\ninput_per_mtok = inf\noutput_per_mtok = 2\n",
            "faremeter.toml: prices.m.input_per_mtok: must be a finite number, got inf",
        ),
        (
            '[prices.m]\ninput_per_mtok = "abc"\noutput_per_mtok = 2\n',
            "faremeter.toml: prices.m.input_per_mtok: must be a number, got 'abc'",
        ),
        (
            "[prices.m]\ninput_per_mtok = true\noutput_per_mtok = 2\n",
            "faremeter.toml: prices.m.input_per_mtok: must be a number, got True",
        ),
        (
            "[prices.m]\noutput_per_mtok = 2\n",
            "faremeter.toml: prices.m.input_per_mtok: required key is missing",
        ),
        (
            "[prices.m]\ninput_per_mtok = 1\noutput_per_mtok = 2\ninput_per_token = 3\n",
            "faremeter.toml: prices.m.input_per_token: unknown key",
        ),
        (
            "[budgets.daily]\nlimit = 5\n",
            "faremeter.toml: budgets: input should be a valid list",
        ),
        (
            "[ledger]\nqueue_size = 0\n",
            "faremeter.toml: ledger.queue_size: input should be greater than 0, got 0",
        ),
        (
            "[ledger]\nurl = 5\n",
            "faremeter.toml: ledger.url: input should be a valid string, got 5",
        ),
        (
            '[tools.web_search]\nunit = "call"\n',
            "faremeter.toml: tools.web_search: needs price_per_call and/or price_per_unit",
        ),
        (
            "[tools.web_search]\nprice_per_call = -0.005\n",
            "faremeter.toml: tools.web_search.price_per_call: must be >= 0, got -0.005",
        ),
        ("[prices\n", "faremeter.toml: invalid TOML"),
    ],
)
def test_errors_name_file_key_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config("faremeter.toml")
    assert str(info.value).startswith(message)


def test_every_problem_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[prices.a]\ninput_per_mtok = -1\noutput_per_mtok = -2\n")
    with pytest.raises(ConfigError) as info:
        load_config("faremeter.toml")
    assert "prices.a.input_per_mtok" in str(info.value)
    assert "prices.a.output_per_mtok" in str(info.value)


def test_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_config(tmp_path / "nope.toml")


def test_alias_to_unknown_model_is_a_config_error(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[aliases]\n"prod" = "gpt-4oo"\n'))
    with pytest.raises(ConfigError) as info:
        PriceCatalog.from_config(config)
    assert str(info.value).startswith(
        f"{tmp_path / 'faremeter.toml'}: aliases.prod: unknown model 'gpt-4oo'"
    )
    assert "gpt-4o" in str(info.value)


def test_dotted_model_ids_need_quotes(tmp_path: Path) -> None:
    """`[prices.gpt-5.2]` is TOML for prices -> gpt-5 -> 2; the error says so by key."""
    config_text = "[prices.gpt-5.2]\ninput_per_mtok = 3\noutput_per_mtok = 15\n"
    with pytest.raises(
        ConfigError, match=r"prices\.gpt-5\.input_per_mtok: required key is missing"
    ):
        load_config(write(tmp_path, config_text))
