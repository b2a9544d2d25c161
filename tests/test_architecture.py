"""The shape of lab/: the layers in pyproject.toml hold (import-linter) and the code is formatted and linted (ruff)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def test_import_contracts_hold():
    result = subprocess.run([tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is live: a data module importing the trainer is caught."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "lab", copy / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "lab" / "data" / "upward.py").write_text("from lab.train import trainer  # noqa: F401\n")
    result = subprocess.run(
        [tool("lint-imports")], cwd=copy, capture_output=True, text=True, env={"PYTHONPATH": str(copy), "PATH": ""}
    )
    assert result.returncode != 0 and "lab.data.upward -> lab.train" in result.stdout, result.stdout[-2000:]


def test_public_short_names_still_work():
    import lab.interfaces
    import lab.parts.interfaces
    import lab.parts.registry
    import lab.registry

    assert lab.interfaces.Generator is lab.parts.interfaces.Generator
    assert lab.registry.GENERATORS is lab.parts.registry.GENERATORS


@pytest.mark.parametrize("command", [["format", "--check", "."], ["check", "."]])
def test_ruff(command):
    result = subprocess.run([tool("ruff"), *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
