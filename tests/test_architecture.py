"""The imports form the pipeline's DAG (the import-linter contracts in pyproject.toml): each stage
imports only the stages and shared modules below it, the IR and the diagnostics import no stage, and
lowering never imports the front end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the `snnspec` package under `root`, with the contracts in `root`'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_imports_keep_the_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module, imported, broken", [
    ("lower/plan.py", "snnspec.check", "snnspec.lower is not allowed to import snnspec.check"),
    ("lower/neuron.py", "snnspec.check_network", "snnspec.lower is not allowed to import snnspec.check_network"),
    ("diagnostics.py", "snnspec.loader", "snnspec.diagnostics is not allowed to import snnspec.loader"),
    ("ir.py", "snnspec.lower.plan", "snnspec.ir is not allowed to import snnspec.lower"),
    ("check.py", "snnspec.lower.rule", "snnspec.check is not allowed to import snnspec.lower"),
])
def test_an_import_against_the_pipeline_breaks_a_contract(tmp_path: Path, module: str, imported: str,
                                                          broken: str) -> None:
    """The contracts catch an import inside a function, the way a cycle is usually dodged."""
    shutil.copytree(ROOT / "snnspec", tmp_path / "snnspec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "snnspec" / module).open("a", encoding="utf-8") as f:
        f.write(f"\n\ndef _probe() -> None:\n    import {imported}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout + result.stderr
