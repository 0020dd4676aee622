"""[[budgets]] / [budget_store] config with file-key-reason errors; `faremeter budgets`."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from faremeter.budgets import Budget, BudgetManager
from faremeter.budgets.config import load_budget_config, parse_budget_config
from faremeter.cli import main
from faremeter.errors import ConfigError

TOML = """
[[budgets]]
name = "per-user-daily"
limit = "2.00"
window = "day"
per = "user_id"
timezone = "Europe/Paris"

[[budgets]]
name = "sales"
limit = 500
scope = { team = "sales" }
action = "throttle"
warn_at = [0.5, 0.9]

[[budgets]]
name = "hourly-search"
limit = 1.5
window = "90m"

[budget_store]
url = "sqlite:///{db}"
fail = "closed"
timeout_s = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faremeter.toml"
    path.write_text(text.replace("{db}", str(tmp_path / "budgets.db")))
    return path


def test_budgets_and_store_load_from_toml(tmp_path: Path) -> None:
    budgets, store = load_budget_config(write(tmp_path, TOML))
    assert budgets[0] == Budget(
        "per-user-daily", limit="2.00", window="day", per="user_id", timezone="Europe/Paris"
    )
    assert budgets[1].limit == Decimal(500)
    assert budgets[1].warn_at == (Decimal("0.5"), Decimal("0.9"))
    assert budgets[2].limit == Decimal("1.5")
    assert budgets[2].window == dt.timedelta(minutes=90)
    assert (store.fail, store.timeout_s) == ("closed", 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[budgets]]\nname = "a"\n', "f.toml: budgets.0.limit: required key is missing"),
        (
            '[[budgets]]\nname = "a"\nlimit = "-1"\n',
            "f.toml: budgets.0: budget 'a': limit must be > 0",
        ),
        (
            '[[budgets]]\nname = "a"\nlimit = "1"\nwindow = "week"\n',
            "f.toml: budgets.0.window: must be 'day', 'month', 'trace' or a duration",
        ),
        ('[[budgets]]\nname = "a"\nlimit = "1"\ncolour = "red"\n', "budgets.0.colour: unknown key"),
        (
            '[[budgets]]\nname = "a"\nlimit = "1"\n[[budgets]]\nname = "a"\nlimit = "2"\n',
            "budgets.1.name: budget 'a' is defined twice",
        ),
        ('[budget_store]\nfail = "maybe"\n', "f.toml: budget_store.fail: "),
        (
            '[[budgets]]\nname = "a"\nlimit = "1"\ntimezone = "Mars/Base"\n',
            "unknown timezone 'Mars/Base'",
        ),
    ],
)
def test_bad_budget_config_names_file_key_and_reason(text: str, message: str) -> None:
    import tomllib

    with pytest.raises(ConfigError) as info:
        parse_budget_config(tomllib.loads(text), source="f.toml")
    assert message in str(info.value)


def test_no_file_means_no_budgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAREMETER_CONFIG", raising=False)
    assert load_budget_config() == ([], load_budget_config()[1])
    assert load_budget_config()[0] == []


def test_cli_shows_counters_from_the_configured_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: no truncated cells
    path = write(tmp_path, TOML)
    budgets, store = load_budget_config(path)
    manager = BudgetManager(budgets, store=store.url)
    manager.reserve(attributes={"user_id": "ada"}, amount=Decimal("0.25")).settle(Decimal("0.25"))
    held = manager.reserve(attributes={"user_id": "ada", "team": "sales"}, amount=Decimal("1"))
    assert main(["budgets", "--config", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_key = {(r["budget"], r["subject"]): r for r in rows}
    ada = by_key[("per-user-daily", "ada")]
    assert (ada["spent"], ada["reserved"], ada["remaining"]) == ("0.25", "1", "0.75")
    assert by_key[("sales", None)]["reserved"] == "1"
    search = by_key[("hourly-search", None)]
    assert (search["spent"], search["reserved"]) == ("0.25", "1")
    held.release()
    assert main(["budgets", "--config", str(path)]) == 0
    table = capsys.readouterr().out
    assert "per-user-daily" in table and "ada" in table and "$0.2500" in table


def test_cli_without_budgets_says_how_to_add_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "")
    assert main(["budgets", "--config", str(path)]) == 1
    assert "[[budgets]]" in capsys.readouterr().out


def test_manager_from_config_applies_store_settings(tmp_path: Path) -> None:
    from faremeter.budgets.config import manager_from_config

    budgets, store = load_budget_config(write(tmp_path, TOML))
    manager = manager_from_config(budgets, store)
    assert (manager.fail, manager.unpriced) == ("closed", "deny")
    assert type(manager.store).__name__ == "SQLiteBudgetStore"
    assert manager_from_config(budgets, store, fail="open").fail == "open"
    manager.close()


def test_cli_reports_an_unreachable_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[[budgets]]\nname = "a"\nlimit = "1"\n')
    # Nothing listens on port 9: the store is unreachable, the CLI says so.
    assert main(["budgets", "--config", str(path), "--store", "redis://127.0.0.1:9/0"]) == 2
    assert "budget store unavailable" in capsys.readouterr().err
