"""A non-editable install works: the grammar and the standard library ship inside the wheel."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = """
import pathlib, sys, snnspec
here = pathlib.Path(snnspec.__file__).resolve()
assert "site-packages" in str(here), here
assert (here.parent / "_data" / "snn.lark").is_file()
assert (here.parent / "_data" / "std" / "neurons.snn").is_file()
text = 'from "std/neurons.snn" import Leaky\\nnetwork N {\\n steps = 3\\n input x[4] encode direct\\n' \\
       ' layer h = Leaky[2]\\n x -> dense -> h\\n output h.spike count\\n}\\n'
source = snnspec.generate(text=text, name="n.snn")
assert "class N(nn.Module)" in source
print("ok", here)
"""


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv(tmp_path):
    pytest.importorskip("hatchling")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("snnspec-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # the dependencies come from this environment (the test runs offline); snnspec from the wheel
    outer = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_outer_dependencies.pth").write_text("\n".join(outer) + "\n")
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run([str(python), "-c", SCRIPT], cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert str(venv) in result.stdout
    cli = subprocess.run([str(python), "-m", "snnspec", "check", str(ROOT / "specs" / "examples" / "mnist_mlp.snn")],
                         cwd=work, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
