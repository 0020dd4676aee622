"""The published artifacts work: built wheels installed into a fresh venv.

Tests run against the workspace, where every package is importable from
source; that hides a missing data file, a wrong package list or an extra that
does not resolve. Here the four distributions are built with ``uv build``, a
fresh Python 3.11 venv gets the core wheel with the LangChain adapter and the
storage/export/dashboard extras (dependencies from the package registry, the
adapters only from ``--find-links``, exactly as ``faremeter[langchain]`` must
resolve once published), and the installed copy is exercised in a subprocess
of that venv: price and record a call, the CLI, the LangChain handler on a
fake model, the package data. A second venv gets the bare core to prove it is
light and names the extra to install when one is missing. Finally each
``pip install`` line of the README's "Install" section runs as written, with
pip, in a fresh ``python -m venv`` against a copy of the checkout.

Needs ``uv`` on PATH (wheel tests) and the package registry; skips with the
reason otherwise. Uses the normal uv and pip caches: about a minute and a half
on a 2-core machine, most of it pip building the checkout three times.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "shared_core"
ADAPTERS = {
    "faremeter-langchain": ROOT / "packages" / "faremeter-langchain",
    "faremeter-llamaindex": ROOT / "packages" / "faremeter-llamaindex",
    "faremeter-litellm": ROOT / "packages" / "faremeter-litellm",
}
# Every extra the README and the docs tell users to install.
DOCUMENTED_EXTRAS = (
    "all",
    "langchain",
    "llamaindex",
    "litellm",
    "postgres",
    "redis",
    "otel",
    "prometheus",
    "dashboard",
    "demo",
)
SERVICE_EXTRAS = "redis,postgres,otel,prometheus,dashboard"
# Package data that only exists as non-Python files: lose one and the wheel
# imports fine but prices nothing, routes blind or serves a blank dashboard.
CORE_DATA = (
    "faremeter/py.typed",
    "faremeter/data/prices.json",
    "faremeter/data/complexity_model.json",
    "faremeter/dashboard/static/index.html",
    "faremeter/dashboard/static/app.js",
    "faremeter/dashboard/static/app.css",
    "faremeter/dashboard/static/vendor/uPlot.iife.min.js",
    "faremeter/dashboard/static/vendor/uPlot.min.css",
    "faremeter/dashboard/static/vendor/uPlot.LICENSE",
)
# What the bare core must never pull in: frameworks and the optional extras.
NOT_IN_CORE = (
    "langchain-core",
    "langgraph",
    "llama-index-core",
    "litellm",
    "faremeter-langchain",
    "redis",
    "psycopg",
    "opentelemetry-sdk",
    "prometheus-client",
    "starlette",
    "uvicorn",
)


def _version() -> str:
    with (CORE / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


VERSION = _version()


def _index_url() -> str:
    return os.environ.get("UV_DEFAULT_INDEX") or os.environ.get(
        "UV_INDEX_URL", "https://pypi.org/simple/"
    )


def _unavailable() -> str | None:
    """Why the wheels cannot be built and installed here, or None."""
    if shutil.which("uv") is None:
        return "uv is not on PATH: pip install uv"
    return _registry_unreachable()


def _registry_unreachable() -> str | None:
    """Why the package registry cannot be used, or None."""
    url = _index_url().rstrip("/") + "/pydantic/"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read(1)
    except Exception as exc:
        name = type(exc).__name__
        return f"package registry {url} unreachable ({name}); the wheels' dependencies come from it"
    return None


def _run(*cmd: str | Path, cwd: Path = ROOT, timeout: float = 300) -> str:
    """Run a command; fail the test with its output when it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


@dataclass(frozen=True, kw_only=True, slots=True)
class Venv:
    """A fresh virtualenv with faremeter installed from the built wheels."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run_python(self, code: str) -> dict[str, Any]:
        """Run ``code`` in the venv, outside the checkout; it prints one JSON object."""
        out = _run(self.python, "-I", "-c", code, cwd=self.root)
        return json.loads(out.strip().splitlines()[-1])

    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python3.*/site-packages"))

    def installed(self) -> dict[str, str]:
        out = _run("uv", "pip", "list", "--python", self.python, "--format", "json")
        return {p["name"]: p["version"] for p in json.loads(out)}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("dist")
    _run("uv", "build", "--all-packages", "-q", "-o", out)
    return out


def _make_venv(dist: Path, where: Path, *requirements: str) -> Venv:
    venv = Venv(root=where / "venv")
    _run("uv", "venv", "-q", venv.root, "--python", "3.11")
    # By name, not by path: the adapters exist only in --find-links, so this
    # is how `faremeter[langchain]` resolves for a user once published.
    _run("uv", "pip", "install", "-q", "--python", venv.python, "--find-links", dist, *requirements)
    return venv


@pytest.fixture(scope="module")
def full_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    where = tmp_path_factory.mktemp("full")
    yield _make_venv(dist, where, f"faremeter[langchain,{SERVICE_EXTRAS}]=={VERSION}")


@pytest.fixture(scope="module")
def core_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return _make_venv(dist, tmp_path_factory.mktemp("core"), f"faremeter=={VERSION}")


def _wheel(dist: Path, dist_name: str) -> zipfile.ZipFile:
    stem = dist_name.replace("-", "_")
    (path,) = dist.glob(f"{stem}-{VERSION}-py3-none-any.whl")
    return zipfile.ZipFile(path)


def _metadata(wheel: zipfile.ZipFile) -> list[tuple[str, str]]:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    msg = Parser().parsestr(wheel.read(name).decode())
    return [(k, str(v)) for k, v in msg.items()]


# --- the wheels themselves -------------------------------------------------


def test_core_wheel_carries_its_package_data(dist: Path) -> None:
    names = set(_wheel(dist, "faremeter").namelist())
    missing = [f for f in CORE_DATA if f not in names]
    assert not missing, f"core wheel lacks {missing}"


@pytest.mark.parametrize("project", [CORE, *ADAPTERS.values()], ids=lambda p: p.name)
def test_wheel_holds_every_source_file(dist: Path, project: Path) -> None:
    """Everything under src/ ships: a new data file never silently stays behind."""
    with (project / "pyproject.toml").open("rb") as f:
        name = tomllib.load(f)["project"]["name"]
    src = project / "src"
    on_disk = {
        p.relative_to(src).as_posix()
        for p in src.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    in_wheel = set(_wheel(dist, name).namelist())
    assert f"{name.replace('-', '_')}/py.typed" in in_wheel
    assert on_disk - in_wheel == set()


def test_core_metadata_declares_the_documented_extras(dist: Path) -> None:
    meta = _metadata(_wheel(dist, "faremeter"))
    extras = {v for k, v in meta if k == "Provides-Extra"}
    assert set(DOCUMENTED_EXTRAS) <= extras
    fields = dict(meta)
    assert fields["Requires-Python"] == ">=3.11"
    assert fields["License-Expression"] == "Apache-2.0"
    entry_points = _wheel(dist, "faremeter").read(f"faremeter-{VERSION}.dist-info/entry_points.txt")
    assert b"faremeter = faremeter.cli:main" in entry_points


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_adapter_metadata_requires_faremeter(dist: Path, name: str) -> None:
    requires = [v for k, v in _metadata(_wheel(dist, name)) if k == "Requires-Dist"]
    assert any(r.split(";")[0].replace(" ", "").startswith("faremeter") for r in requires), requires


# --- the full install: core + LangChain adapter + service extras ------------


def test_installed_from_these_wheels(full_venv: Venv) -> None:
    installed = full_venv.installed()
    assert installed["faremeter"] == VERSION
    assert installed["faremeter-langchain"] == VERSION
    for dep in ("redis", "psycopg", "opentelemetry-sdk", "prometheus-client", "starlette"):
        assert dep in installed, f"extra dependency {dep} not installed"
    # The copy in the venv is this checkout's code, not some other release.
    site = full_venv.site_packages()
    for rel in ("faremeter/__init__.py", "faremeter/meter.py"):
        assert (site / rel).read_bytes() == (CORE / "src" / rel).read_bytes()
    lc_init = "faremeter_langchain/__init__.py"
    assert (site / lc_init).read_bytes() == (
        ADAPTERS["faremeter-langchain"] / "src" / lc_init
    ).read_bytes()


def test_meter_records_and_prices_a_call(full_venv: Venv) -> None:
    result = full_venv.run_python(
        """
import json, faremeter
from faremeter import Usage
meter = faremeter.Meter(ledger="memory")
with meter.trace("research", user_id="u1") as t:
    meter.record_llm("gpt-4o", Usage(input_tokens=1000, output_tokens=100))
meter.flush()
spans = meter.ledger.spans()
llm = [s for s in spans if s.model]
print(json.dumps({
    "file": faremeter.__file__,
    "trace_cost": str(t.cost),
    "price": str(meter.price("gpt-4o", Usage(input_tokens=1000, output_tokens=100)).total),
    "spans": len(spans),
    "llm_model": llm[0].model,
    "llm_user": llm[0].attributes.get("user_id"),
}))
"""
    )
    assert "site-packages" in str(result["file"])
    # gpt-4o: $2.50 / 1M input, $10 / 1M output -> 0.0025 + 0.001.
    assert result["trace_cost"] == "0.0035"
    assert result["price"].rstrip("0") == "0.0035"
    assert result["spans"] == 2
    assert result["llm_model"] == "gpt-4o"
    assert result["llm_user"] == "u1"


def test_cli_reports_its_version(full_venv: Venv) -> None:
    out = _run(full_venv.root / "bin" / "faremeter", "--version", cwd=full_venv.root)
    assert out.split() == ["faremeter", VERSION]


def test_langchain_handler_prices_a_fake_model(full_venv: Venv) -> None:
    result = full_venv.run_python(
        """
import json, faremeter
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from faremeter_langchain import FaremeterCallbackHandler
meter = faremeter.Meter(ledger="memory")
model = GenericFakeChatModel(messages=iter([AIMessage(
    content="hello", response_metadata={"model_name": "gpt-4o-mini"},
    usage_metadata={"input_tokens": 1200, "output_tokens": 150, "total_tokens": 1350})]))
model.invoke("hi", config={"callbacks": [FaremeterCallbackHandler(meter)],
                           "metadata": {"user_id": "u1"}})
meter.flush()
spans = [s for s in meter.ledger.spans() if s.model]
print(json.dumps({"n": len(spans), "model": spans[0].model, "cost": str(spans[0].cost.total),
                  "user": spans[0].attributes.get("user_id")}))
"""
    )
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output -> 0.00018 + 0.00009.
    assert result["n"] == 1
    assert result["model"] == "gpt-4o-mini"
    assert result["cost"].rstrip("0") == "0.00027"
    assert result["user"] == "u1"


def test_installed_package_data_is_readable(full_venv: Venv) -> None:
    result = full_venv.run_python(
        """
import json
from importlib.resources import files
root = files("faremeter")
prices = json.loads((root / "data" / "prices.json").read_text())
model = json.loads((root / "data" / "complexity_model.json").read_text())
static = root / "dashboard" / "static"
print(json.dumps({
    "prices": len(prices) > 0, "model": len(model) > 0,
    "static": sorted(p.name for p in static.iterdir() if p.is_file()),
    "vendor": sorted(p.name for p in (static / "vendor").iterdir()),
}))
"""
    )
    assert result["prices"] and result["model"]
    assert {"index.html", "app.js", "app.css"} <= set(result["static"])
    assert "uPlot.iife.min.js" in result["vendor"]


def test_extras_make_their_features_importable(full_venv: Venv) -> None:
    result = full_venv.run_python(
        """
import json
from faremeter.ledger import PostgresStore
from faremeter.dashboard.app import create_app
import faremeter.export.otel, faremeter.export.prometheus
import redis, psycopg, opentelemetry.sdk.trace, prometheus_client, starlette, uvicorn
print(json.dumps({"ok": PostgresStore.__name__}))
"""
    )
    assert result == {"ok": "PostgresStore"}


# --- the bare core -----------------------------------------------------------


def test_bare_core_is_light(core_venv: Venv) -> None:
    installed = core_venv.installed()
    assert installed["faremeter"] == VERSION
    heavy = sorted(set(NOT_IN_CORE) & set(installed))
    assert heavy == [], f"`pip install faremeter` pulls in {heavy}"


def test_bare_core_prices_and_names_missing_extras(core_venv: Venv) -> None:
    result = core_venv.run_python(
        """
import json, faremeter
from faremeter import Usage
meter = faremeter.Meter(ledger="memory")
cost = meter.price("gpt-4o", Usage(input_tokens=1000, output_tokens=100)).total
errors = {}
try:
    import faremeter_langchain
    errors["langchain"] = "importable"
except ImportError as exc:
    errors["langchain"] = "ImportError"
try:
    from faremeter.ledger import Ledger
    Ledger.from_url("postgresql://nobody@127.0.0.1:1/none")
    errors["postgres"] = "no error"
except ImportError as exc:
    errors["postgres"] = str(exc)
print(json.dumps({"cost": str(cost), **errors}))
"""
    )
    assert result["cost"].rstrip("0") == "0.0035"
    assert result["langchain"] == "ImportError"
    assert "faremeter[postgres]" in str(result["postgres"])


def test_all_extra_resolves_to_the_three_adapters(dist: Path, core_venv: Venv) -> None:
    """``faremeter[all]`` finds every adapter; a dry run resolves without installing."""
    proc = subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--dry-run",
            "--python",
            str(core_venv.python),
            "--find-links",
            str(dist),
            f"faremeter[all]=={VERSION}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    plan = proc.stdout + proc.stderr  # uv prints the plan on stderr
    assert proc.returncode == 0, plan
    for name in ADAPTERS:
        assert f"+ {name}=={VERSION}" in plan, plan


# --- README's "Install" lines, literally, with pip from a checkout ----------

# What each extra must make importable.
EXTRA_MODULES = {
    "redis": ("redis",),
    "postgres": ("psycopg",),
    "otel": ("opentelemetry.sdk.trace",),
    "prometheus": ("prometheus_client",),
    "dashboard": ("starlette", "uvicorn"),
    "langgraph": ("langgraph",),
}


def _readme_install_lines() -> list[str]:
    """The ``pip install`` lines of the README's "Install" section, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.startswith("pip install ")]


def _expected_modules(args: list[str]) -> list[str]:
    """The modules a ``pip install`` of these checkout paths must make importable."""
    modules: list[str] = []
    for arg in args:
        path, _, extras = arg.partition("[")
        with (ROOT / path / "pyproject.toml").open("rb") as f:
            modules.append(tomllib.load(f)["project"]["name"].replace("-", "_"))
        for extra in filter(None, extras.rstrip("]").split(",")):
            modules.extend(EXTRA_MODULES.get(extra, ()))
    return modules


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distributions' sources, copied: pip builds them without touching the tree."""
    reason = _registry_unreachable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "dist", "build")
    shutil.copytree(CORE, out / "shared_core", ignore=ignore)
    shutil.copytree(ROOT / "packages", out / "packages", ignore=ignore)
    return out


def test_readme_lists_install_lines() -> None:
    lines = _readme_install_lines()
    assert lines, "README's Install section has no `pip install` lines"
    assert lines[0].startswith("pip install ./shared_core")


@pytest.mark.parametrize(
    "line", _readme_install_lines(), ids=lambda line: " ".join(shlex.split(line, comments=True))
)
def test_readme_install_line_works(line: str, checkout: Path, tmp_path: Path) -> None:
    args = shlex.split(line, comments=True)[2:]
    assert args, line
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    # The line's own arguments; -q and --no-compile (no .pyc pass) only save time.
    _run(venv / "bin" / "pip", "install", "-q", "--no-compile", *args, cwd=checkout)
    modules = _expected_modules(args)
    code = (
        "import importlib, json; "
        f"print(json.dumps([importlib.import_module(m).__name__ for m in {modules}]))"
    )
    out = _run(venv / "bin" / "python", "-I", "-c", code, cwd=tmp_path)
    assert json.loads(out.strip().splitlines()[-1]) == modules
    version = _run(venv / "bin" / "faremeter", "--version", cwd=tmp_path)
    assert version.split() == ["faremeter", VERSION]


if __name__ == "__main__":  # pragma: no cover - manual run
    sys.exit(pytest.main([__file__, "-q", "-p", "no:randomly"]))


def test_readme_first_line_installs_only_what_the_demo_needs(tmp_path: Path) -> None:
    """README's demo line in a fresh clone: a light venv (no LiteLLM, no LlamaIndex) that runs."""
    if shutil.which("uv") is None or shutil.which("git") is None:
        pytest.skip("needs uv and git on PATH")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("pip install uv && uv run"))
    command = [*shlex.split(line.split("&&", 1)[1]), "--tasks", "10"]
    env = {
        k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("FAREMETER_")
    }
    done = subprocess.run(
        command, cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Research agent on LangGraph" in done.stdout and "Next:" in done.stdout
    site = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"faremeter", "faremeter_langchain", "langgraph"} <= installed
    assert not installed & {"litellm", "llama_index_core", "pytest", "mkdocs"}, installed
