"""The generated modules read as written by hand: no line over 120 characters (emit/layout.py
breaks long statements inside brackets and wraps docstrings), and in the PyTorch modules no
leftovers of an unspecialised template (empty slices and loops, unused helpers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import snnspec
from snnspec.emit.torch.helpers import HELPERS

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
