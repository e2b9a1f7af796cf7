"""The generated modules read as written by hand: no line over 120 characters (emit/layout.py
breaks long statements inside brackets and wraps docstrings), and in the PyTorch modules no
leftovers of an unspecialised template (empty slices and loops, unused helpers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import snnspec
from snnspec.emit.torch import HELPERS

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = sorted((ROOT / "tests" / "golden" / "torch").glob("*.py"))
JAX_GOLDEN = sorted((ROOT / "tests" / "golden" / "jax").glob("*.py"))
LEFTOVERS = ["[:0]", "range(0)", "[None] * 0", "torch.empty((0, 0)"]


def _fused_blocks(text: str) -> list[str]:
    """The top-level kernels (`_..._forward`, `_..._backward`) and `...Run` classes of a module."""
    blocks = re.split(r"\n(?=\S)", text)
    return [b for b in blocks if re.match(r"(def _\w+_(forward|backward)\(|class \w+Run\()", b)]


def _check_lines(text: str) -> None:
    long = [line for line in text.splitlines() if len(line) > 120]
    assert not long, long[:3]


def _check(text: str) -> None:
    _check_lines(text)
    for leftover in LEFTOVERS:
        assert leftover not in text, leftover
    for helper in (h for h in re.findall(r"^def (_[a-z_]+)\(", text, re.M) if h in HELPERS):
        assert re.search(rf"\b{helper}\(", text.replace(f"def {helper}(", "")), f"{helper} defined, never called"


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_module_text(path: Path) -> None:
    _check(path.read_text())


def test_std_neurons_module_text() -> None:
    text = snnspec.generate(ROOT / "specs" / "std" / "neurons.snn")
    assert len(_fused_blocks(text)) > 20  # the kernels are found
    _check(text)
    _check_lines(snnspec.generate(ROOT / "specs" / "std" / "neurons.snn", backend="jax"))


@pytest.mark.parametrize("path", JAX_GOLDEN, ids=[p.stem for p in JAX_GOLDEN])
def test_jax_golden_lines(path: Path) -> None:
    _check_lines(path.read_text())


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_runtime_helpers_are_copied_definition_by_definition(backend: str) -> None:
    """Each helper a generated module carries is one definition of snnspec/runtime/BACKEND_helpers.py,
    with the statements before it (constants, a guarded import) and without the file's own imports;
    a module gets exactly the helpers its code calls, and those they call."""
    import ast

    from snnspec.runtime import called, helpers

    pytest.importorskip(backend)
    source = (ROOT / "snnspec" / "runtime" / f"{backend}_helpers.py").read_text()
    defined = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    pieces = helpers(backend)
    assert list(pieces) == defined
    for name, text in pieces.items():
        assert not text.startswith(("import ", "from ", '"""')), name
        assert re.search(rf"^(def|class) {name}\b", text, re.M), name
        compile(text, name, "exec")
    if backend == "torch":
        assert pieces["_kernels"].startswith("try:\n    import numba")  # the guarded import travels with it
        assert called(pieces, "y = _shift(x, 2)") == [pieces["_shift"]]
    else:  # `_batchnorm` calls `_channel_mean`, which the file defines before it
        assert called(pieces, "y = _batchnorm(x)") == [pieces["_channel_mean"], pieces["_batchnorm"]]


def test_runtime_helpers_run_as_the_generated_code_runs_them() -> None:
    """The helper file is real code: importable, and its `_shift` delays a sequence with zeros."""
    import torch

    from snnspec.runtime import torch_helpers

    x = torch.arange(1.0, 5.0).reshape(4, 1)
    assert torch_helpers._shift(x, 1).flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert torch_helpers._shift(x, 9).abs().sum() == 0
