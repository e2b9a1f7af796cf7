"""`--target summary`: the third printer of the program IR (emit/summary.py).

Its figures are checked against the torch module the same spec builds (parameter and buffer
counts) and against the op shapes (multiply-adds), and its schedule against the program.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import snnspec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.snn"))


def counts(summary: str) -> dict[str, int]:
    line = next(x for x in summary.splitlines() if x.strip().startswith("arrays:"))
    return {role: int(n.replace(",", "")) for n, role in re.findall(r"(\d[\d,]*) ([a-z]+)", line.split("(")[0])}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_counts_match_the_torch_module(path):
    summary = snnspec.generate(path, backend="summary")
    module = snnspec.compile(path)
    sections = re.split(r"^(?=network )", summary, flags=re.M)
    for net in snnspec.load_lowered(path).networks.values():
        (section,) = [s for s in sections if s.startswith(f"network {net.name}:")]
        found = counts(section)
        network = getattr(module, net.name)()
        trainable = sum(p.numel() for p in network.parameters())
        assert found.get("learnable", 0) + found.get("frozen", 0) == trainable
        frozen = sum(p.numel() for p in network.parameters() if not p.requires_grad)
        assert found.get("frozen", 0) == frozen
        plastic = sum(b.numel() for name, b in network.named_buffers() if name.endswith((".weight", ".bias")))
        assert found.get("plastic", 0) == plastic


def test_mlp_summary_reads_as_a_table():
    text = snnspec.generate(ROOT / "specs" / "examples" / "mnist_mlp.snn", backend="summary")
    assert "network MnistMLP: dt = 1 (steps), 25 steps" in text
    assert re.search(r"hidden\s+Leaky\(beta=0.95\)\s+\[1000\]\s+mem\s+0\s+layer-major", text)
    assert re.search(r"0\s+x.value\s+dense\(784 -> 1000\)\s+hidden.I\s+785,000", text)
    assert "multiply-adds per sample: 794,000 each step" in text
    schedule = [line.strip() for line in text.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert schedule == ["1. encode x[784] (rate)", "2. run hidden over all steps from path 0",
                        "3. run out over all steps from path 1", "4. read out out.spike count as out_spike"]


def test_recurrent_and_static_paths():
    text = snnspec.generate(ROOT / "specs" / "examples" / "csnn.snn", backend="summary")
    assert "encode x[1, 28, 28] (direct; its static paths computed once)" in text
    # the first conv (12 x 24 x 24 outputs of 25 taps) reads the static input: once, not every step
    assert "multiply-adds per sample: 1,239,040 each step, 172,800 once" in text
    text = snnspec.generate(ROOT / "specs" / "examples" / "stdp.snn", backend="summary")
    assert "step loop over exc (recurrent; before it path 0; rules step on path 0)" in text
    assert "78,400 plastic" in text and "random streams: rate input x" in text


def test_cli_target_summary():
    result = subprocess.run([sys.executable, "-m", "snnspec", "build", "specs/examples/recurrent.snn", "-t", "summary"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("snnspec summary of recurrent.snn") and "step loop over" in result.stdout
