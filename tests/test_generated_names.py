"""Names and file names in generated code (issue 12's two emitter defects, ../shared/reliability/).

Module-level names come from one allocator (`emit.names.ModuleNames`), so two neurons whose
kernels would share a name (`LeakyA` and `Leaky_a`, a user `L_i` beside the std `LI`) each run
their own equations; a spec's file name reaches the output only through `writer.source_name`,
escaped and relative to the root spec, so a folder name cannot inject code and the output does
not depend on how the path was spelled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import snnspec  # noqa: E402
from snnspec.emit.writer import source_name  # noqa: E402

TWO_LEAKY = """
neuron LeakyA {
    param beta = 0.9
    state v = 0
    v <- beta * v + I
    spike when v > 1
    on spike { v = 0 }
}
neuron Leaky_a {
    param beta = 0.5
    state v = 0
    v <- beta * v + 3 * I
    spike when v > 1
    on spike { v = 0 }
}
network Net {
    steps = 6
    input x[4] encode direct
    layer h = LeakyA[3]
    layer g = Leaky_a[3]
    x -> dense -> h
    x -> dense -> g
    output h.v trace, g.v trace
}
"""


def reference_trace(current: np.ndarray, beta: float, gain: float, steps: int) -> np.ndarray:
    """v <- beta v + gain I, spike when v > 1, then v = 0 (the post-reset value is the state). `beta` as
    the module holds it: made in the default float32, then `.double()`."""
    v = np.zeros_like(current)
    out = []
    for _ in range(steps):
        v = beta * v + gain * current
        v = np.where(v > 1, 0.0, v)
        out.append(v)
    return np.stack(out)


@pytest.mark.parametrize("fused", [True, False])
def test_neurons_with_colliding_kernel_names_each_run_their_own_equations(fused):
    """../shared/reliability/min_snake_case_kernel_collision.snn: each layer runs its own neuron."""
    mod = snnspec.compile(text=TWO_LEAKY, name="two_leaky.snn")
    mod.FUSED = fused
    torch.manual_seed(0)
    net = mod.Net().double()
    x = torch.rand(5, 4, dtype=torch.float64) * 0.8
    out = net(x)
    with torch.no_grad():
        current_h = net.x_h(x).numpy()
        current_g = net.x_g(x).numpy()
    beta_h = float(np.float32(0.9))
    np.testing.assert_allclose(out.h_v.detach().numpy(), reference_trace(current_h, beta_h, 1.0, 6), rtol=1e-12)
    np.testing.assert_allclose(out.g_v.detach().numpy(), reference_trace(current_g, 0.5, 3.0, 6), rtol=1e-12)


def test_colliding_kernels_get_distinct_names():
    source = snnspec.generate(text=TWO_LEAKY, name="two_leaky.snn")
    assert "def _leaky_a_forward(" in source and "def _leaky_a_forward_1(" in source
    assert source.count("def _leaky_a_forward(") == 1


USER_L_I = """
from "std/neurons.snn" import LI
neuron L_i {
    state v = 0
    v <- 0.5 * v + I
    spike when v > 1
}
network Net {
    dt = 1 ms
    steps = 5
    input x[4] encode direct
    layer h = L_i[3]
    layer r = LI(tau = 5 ms)[2]
    x -> dense -> h
    h -> dense -> r
    output r.v trace
}
"""


def test_user_neuron_beside_std_neuron_of_the_same_kernel_name():
    """../shared/reliability/min_kernel_collision_with_std_LI.snn: fused equals plain (it raised TypeError)."""
    mod = snnspec.compile(text=USER_L_I, name="l_i.snn")
    torch.manual_seed(0)
    net = mod.Net().double()
    x = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    results = []
    for fused in (True, False):
        mod.FUSED = fused
        out = net(x).r_v
        (grad,) = torch.autograd.grad(out.sum(), x)
        results.append((out.detach(), grad))
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


SPEC = """from "std/neurons.snn" import Leaky
network Net {
    steps = 3
    input x[4] encode direct
    layer h = Leaky[3]
    x -> dense -> h
    output h.spike count
}
"""


def test_a_newline_in_the_spec_folder_cannot_inject_code(tmp_path):
    """../shared/reliability/path_newline_injection.py, through the CLI."""
    folder = tmp_path / 'p\n        print("INJECTED CODE RAN")\n#'
    folder.mkdir()
    (folder / "main.snn").write_text(SPEC)
    out = tmp_path / "out.py"
    build = subprocess.run([sys.executable, "-m", "snnspec", "build", str(folder / "main.snn"), "-o", str(out)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([sys.executable, "-c", "import sys, torch; sys.path.insert(0, sys.argv[1]); import out; "
                          "out.Net()(torch.rand(1, 4))", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "INJECTED" not in run.stdout
    assert all(not line.lstrip().startswith("print(") for line in out.read_text().splitlines())


def test_output_does_not_depend_on_how_the_path_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "cell.snn").write_text("""neuron Cell {
    state v = 0
    v <- 0.5 * v + I
    spike when v > 1
    on spike { v = 0 }
}
""")
    (tmp_path / "main.snn").write_text(SPEC.replace('from "std/neurons.snn" import Leaky',
                                                    'from "lib/cell.snn" import Cell').replace("Leaky[3]", "Cell[3]"))
    absolute = snnspec.generate(tmp_path / "main.snn")
    monkeypatch.chdir(tmp_path / "lib")
    relative = snnspec.generate(Path("..") / ".." / tmp_path.name / "main.snn")
    assert absolute == relative
    assert "# lib/cell.snn:3" in absolute and str(tmp_path) not in absolute


@pytest.mark.parametrize("name, root, expected", [
    ("std/neurons.snn", "a/b/main.snn", "std/neurons.snn"),
    ("a/b/main.snn", "a/b/main.snn", "main.snn"),
    ("a/lib/x.snn", "a/b/main.snn", "../lib/x.snn"),
    ("we\nird\u2028.snn", "we\nird\u2028.snn", "we\\nird\\u2028.snn"),
    ("<string>", "<string>", "<string>"),
])
def test_source_names(name, root, expected):
    assert source_name(name, root) == expected
    assert os.linesep not in source_name(name, root)


LOCALS_THAT_READ_ALIKE = """
neuron First {
    input I
    state b_c = 0
    b_c <- 0.5 * b_c + I
}

neuron Second {
    input I
    state c = 0
    c <- 0.9 * c + 2 * I
}

network Net {
    steps = 4
    input x[2] encode direct
    layer a = First[2]
    layer a_b = Second[2]
    x -> dense(2) -> a
    x -> dense(2) -> a_b
    output first = a.b_c trace
    output second = a_b.c trace
}
"""


def test_locals_whose_names_read_alike_stay_apart(tmp_path):
    """Layer `a`'s state `b_c` and layer `a_b`'s state `c` both read `a_b_c` as a local: the JAX network
    gave both outputs the second layer's values (the local was allocated by its text, not by what it
    holds). Each backend must return each layer's own trace, as torch (one local per key) does."""
    pytest.importorskip("jax")
    import jax.numpy as jnp

    path = tmp_path / "alike.snn"
    path.write_text(LOCALS_THAT_READ_ALIKE)
    net = snnspec.compile(path).Net()
    x = torch.rand(3, 2)
    with torch.no_grad():
        out = net(x)
    assert not torch.allclose(out.first, out.second)
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in net.named_parameters()}
    jax_out = snnspec.compile(path, backend="jax").Net.apply(params, jnp.asarray(x.numpy()))
    np.testing.assert_allclose(np.asarray(jax_out.first), out.first.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax_out.second), out.second.numpy(), rtol=1e-5, atol=1e-6)


OUTPUT_NAMES = """
from "std/neurons.snn" import Leaky
network Net {
    steps = 4
    input x[3] encode direct
    layer h = Leaky[2]
    x -> dense -> h
    output p = h.spike count
    output state = h.mem last
    output count = h.spike rate
    output lambda = h.mem max
    output h.spike trace
}
"""


def test_outputs_keep_their_spec_names_where_a_tuple_field_can_have_them(tmp_path):
    """`output p = ...` is `out.p` (it was `out.p_`: output fields went through the names reserved for
    locals); only a tuple method or a keyword gets the underscore (`count_`, `lambda_`)."""
    spec = tmp_path / "outputs.snn"
    spec.write_text(OUTPUT_NAMES)
    fields = ("p", "state", "count_", "lambda_", "h_spike")
    out = snnspec.compile(spec).Net()(torch.rand(5, 3))
    assert out._fields == fields
    assert out.p.shape == (5, 2) and out.state.shape == (5, 2) and out.h_spike.shape == (4, 5, 2)
    torch.testing.assert_close(out.p, out.h_spike.sum(0))
    torch.testing.assert_close(out.count_, out.h_spike.mean(0))
    jax = pytest.importorskip("jax")
    net = snnspec.compile(spec, backend="jax").Net
    assert net.apply(net.init(jax.random.PRNGKey(0)), np.ones((5, 3)))._fields == fields
