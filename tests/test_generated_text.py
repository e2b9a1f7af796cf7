"""The generated PyTorch modules read as written by hand: no leftovers of an unspecialised
template (empty slices and loops, unused helpers) and, in the fused kernels and their autograd
Functions, no line over 120 characters. (The other emitters' long lines are not pinned yet.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import snnspec
from snnspec.emit.torch.helpers import HELPERS

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = sorted((ROOT / "tests" / "golden" / "torch").glob("*.py"))
LEFTOVERS = ["[:0]", "range(0)", "[None] * 0", "torch.empty((0, 0)"]


def _fused_blocks(text: str) -> list[str]:
    """The top-level kernels (`_..._forward`, `_..._backward`) and `...Run` classes of a module."""
    blocks = re.split(r"\n(?=\S)", text)
    return [b for b in blocks if re.match(r"(def _\w+_(forward|backward)\(|class \w+Run\()", b)]


def _check(text: str) -> None:
    long = [line for block in _fused_blocks(text) for line in block.splitlines() if len(line) > 120]
    assert not long, long[:3]
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
