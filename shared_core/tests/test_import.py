"""`import faremeter` stays light: no frameworks, no pydantic, no snapshot parsing."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("litellm", "langchain_core", "llama_index", "pydantic", "faremeter.config")


def _modules_after(code: str) -> dict[str, bool]:
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_faremeter_pulls_in_nothing_heavy() -> None:
    loaded = _modules_after("import faremeter")
    assert not any(loaded.values()), {m for m, v in loaded.items() if v}


def test_pricing_a_call_needs_no_framework_or_pydantic() -> None:
    loaded = _modules_after(
        "from faremeter.pricing import PriceCatalog\n"
        "from faremeter.usage import Usage\n"
        "PriceCatalog.default().cost('gpt-4o', Usage(input_tokens=1, output_tokens=1))"
    )
    assert not any(loaded.values()), {m for m, v in loaded.items() if v}


def test_snapshot_is_not_parsed_at_import() -> None:
    code = (
        "import faremeter.pricing\n"
        "from faremeter.pricing.snapshot import load_snapshot\n"
        "import json, sys\n"
        "print(json.dumps({'loaded': load_snapshot.cache_info().currsize}))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"loaded": 0}
