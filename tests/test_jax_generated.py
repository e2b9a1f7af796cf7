"""The generated JAX source as a product (DESIGN.md "Contracts: generated code" and "JAX target").

Self-contained (runs where snnspec cannot be imported; imports only jax, math and typing),
deterministic (byte-identical across runs and hash seeds), safe with any spec names, lint-clean,
traceable (`# file.snn:LINE` on every emitted update), pinned by golden files, and reachable from
the CLI and from `snnspec.compile(..., backend="jax")`.

Golden files: tests/golden/jax/<example>.py hold `snnspec generate --target jax` of each example
the JAX backend builds. After an intended change to the generated code, rewrite them with

    SNNSPEC_UPDATE_GOLDEN=1 python -m pytest tests/test_jax_generated.py -k golden

and review the diff.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import snnspec  # noqa: E402
from snnspec.emit.writer import source_name  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.snn"))
GOLDEN = Path(__file__).resolve().parent / "golden" / "jax"
ALLOWED_IMPORTS = {"__future__", "math", "typing", "jax"}


BUILDABLE = EXAMPLES  # the JAX backend builds every example (tested by the golden files)


# -- self-contained ------------------------------------------------------------------------------

ISOLATED = """
import sys
sys.modules["snnspec"] = None          # `import snnspec` now raises ImportError
sys.path = [p for p in sys.path if p.rstrip("/") != {root!r}]
sys.path.insert(0, ".")
try:
    import snnspec
except ImportError:
    pass
else:
    raise SystemExit("snnspec is importable")
import jax, numpy as np
import digits_mlp
J = digits_mlp.DigitsMLP
params = J.init(jax.random.PRNGKey(0))
x = jax.random.uniform(jax.random.PRNGKey(1), (4, 64)) * 2
out = J.apply(params, x)
grad = jax.grad(lambda p: J.apply(p, x).out_mem.sum())(params)
assert not any(name.startswith("snnspec") for name in sys.modules if sys.modules[name] is not None)
np.savez("result.npz", out=np.asarray(out.out_mem), grad=np.asarray(grad["x_hidden.weight"]))
"""


def test_generated_file_runs_without_snnspec(tmp_path):
    """A copy of the generated file runs in a fresh interpreter where snnspec cannot be imported,
    and gives what the in-process module gives."""
    source = ROOT / "specs" / "examples" / "digits_mlp.snn"
    (tmp_path / "digits_mlp.py").write_text(snnspec.generate(source, backend="jax"))
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED.format(root=str(ROOT))], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    saved = np.load(tmp_path / "result.npz")
    J = snnspec.compile(source, backend="jax").DigitsMLP
    params = J.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 64)) * 2
    np.testing.assert_allclose(J.apply(params, x).out_mem, saved["out"], rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda p: J.apply(p, x).out_mem.sum())(params)
    np.testing.assert_allclose(grad["x_hidden.weight"], saved["grad"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", BUILDABLE, ids=[p.stem for p in BUILDABLE])
def test_generated_code_imports_only_jax_math_typing(path):
    tree = ast.parse(snnspec.generate(path, backend="jax"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            assert module.split(".")[0] in ALLOWED_IMPORTS, module


def test_the_backends_print_the_same_ops():
    """Every op the torch backend prints, the JAX backend prints too (new ops go into both tables)."""
    from snnspec.emit.jax import ops as jax_network
    from snnspec.emit.torch import ops as torch_network

    assert set(torch_network.OP_PRINTERS) <= set(jax_network.OP_PRINTERS)


# -- deterministic -------------------------------------------------------------------------------

HASHES = """
import hashlib, json, sys
import snnspec
paths = json.loads(sys.argv[1])
print(json.dumps({p: hashlib.sha256(snnspec.generate(p, backend="jax").encode()).hexdigest() for p in paths}))
"""


def test_generation_is_deterministic_across_calls_and_hash_seeds():
    paths = [str(p.relative_to(ROOT)) for p in BUILDABLE]
    first = {p: snnspec.generate(p, backend="jax") for p in paths}
    assert first == {p: snnspec.generate(p, backend="jax") for p in paths}
    expected = {p: hashlib.sha256(text.encode()).hexdigest() for p, text in first.items()}
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", HASHES, json.dumps(paths)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == expected, f"PYTHONHASHSEED={seed}"


# -- names from the spec never shadow generated names --------------------------------------------

TEMPLATE = """
neuron {N} {{
    param {math} = 0.9 in [0, 1]
    param {self} = 0.8
    param {lam} = 0.5
    param {print} = 0.1 learnable
    param {p} = 0.3
    param {gate} = 0.2
    state {x} = 0
    state {state} = 0
    state {active} = 0
    state {refractory_left} = 0
    input {i}
    input {out} = 0
    let {dt} = {p} * {lam}
    let {zeros} = 0.5
    let {spike} = {x} * {gate}
    {x} <- {math} * {x} + {i} + {out} * {lam} - detach(spiked) * {self}
    {active} <- {active} + {print} * {x} - {spike}
    {refractory_left} <- {refractory_left} * 0.5 + {dt} * {x} + {zeros}
    d{state}/dt = {x} - {state}
    spike when {x} > {self}
    on spike {{ {x} -= {self}; {active} = 0 }}
    refractory 2
}}

network {NET} {{
    steps = 9
    input {jax}[3] encode direct
    input {key}[2] encode latency(tau = 2, threshold = 0.1)
    input {train}[2] encode delta(threshold = 0.05)
    layer {L1} = {N}[4]
    layer {L2} = {N}[4]
    layer {L3} = {N}[4]
    {jax} -> dense -> {L1}.{i}
    {key} -> dense -> {L1}.{out}
    {train} -> dense -> {L2}.{out}
    {L1} -> dense -> {L2}.{i}
    {L2}.{x} -> dense -> {L3}.{i}
    {L3}.{state} -> dense -> {L2}.{i}
    output {L1}.spike count, {L2}.{state} trace, {o3} = {L3}.{x} last, {L2}.spike rate
}}
"""
# names that the generated JAX code uses itself (modules, builtins, keywords, arguments and
# locals of its functions, helpers' names without their underscore; `state` and `spike` are keywords
# in a neuron, so their keys hold other names, `stacked` and `rest`)
TRICKY = dict(N="jnp", math="math", self="lax", lam="lambda", print="params", p="p", gate="gate", x="xs",
              state="stacked", active="carry", refractory_left="refractory_left", i="values", out="dtype", dt="dt_",
              zeros="zeros", spike="rest", NET="jax", jax="buffers", key="key", train="batch",
              L1="layer_params", L2="new_state", L3="new_buffers", o3="keys")
PLAIN = {**{k: f"n{k.lower()}" for k in TRICKY}, "N": "Cell", "NET": "Net", "dt": "w_dt"}


def test_spec_names_never_shadow_generated_names():
    outputs = []
    for names in (TRICKY, PLAIN):
        mod = snnspec.compile(text=TEMPLATE.format(**names), name=f"names_{names['N']}.snn", backend="jax")
        J = getattr(mod, names["NET"][0].upper() + names["NET"][1:])
        params = J.init(jax.random.PRNGKey(0))
        k = jax.random.split(jax.random.PRNGKey(1), 3)
        inputs = (jax.random.uniform(k[0], (3, 3)) * 4, jax.random.uniform(k[1], (3, 2)),
                  jax.random.uniform(k[2], (9, 3, 2)))
        out = J.apply(params, *inputs)
        grads = jax.grad(lambda p, J=J, inputs=inputs: J.apply(p, *inputs)[1].sum())(params)
        outputs.append((out, list(params.values()), [grads[k] for k in params]))
    (tricky, tp, tg), (plain, pp, pg) = outputs
    assert tricky._fields == ("layer_params_spike", "new_state_stacked", "keys", "new_state_spike")
    assert tricky[0].sum() > 0 and tricky[3].sum() > 0
    for a, b in zip(tricky, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip([*tp, *tg], [*pp, *pg], strict=True):
        np.testing.assert_array_equal(a, b)


def test_op_attributes_never_share_weights_by_name():
    """Two paths whose ops would get the same attribute name (here `x_h_dense`) get distinct params."""
    text = """
from "std/neurons.snn" import Leaky
network N {
    steps = 3
    input x[4] encode direct
    layer h = Leaky[3]
    x -> dense(bias = false) -> dropout(0.5) -> h
    x -> one_to_one -> dense -> h
    output h.mem trace
}
"""
    J = snnspec.compile(text=text, name="attrs.snn", backend="jax").N
    params = J.init(jax.random.PRNGKey(0))
    assert list(params) == ["x_h_one_to_one", "x_h_dense.weight", "x_h_dense_1.weight", "x_h_dense_1.bias"]


# -- lint-clean, traceable -----------------------------------------------------------------------

def test_ruff_clean(tmp_path):
    """`ruff check --select E,F` passes (line length 120 included), except E741 (the language's default
    input is named `I`)."""
    pytest.importorskip("ruff")
    files = []
    targets = [(p.stem, snnspec.generate(p, backend="jax")) for p in BUILDABLE]
    targets.append(("names", snnspec.generate(text=TEMPLATE.format(**TRICKY), name="names.snn", backend="jax")))
    for stem, text in targets:
        path = tmp_path / f"{stem}.py"
        path.write_text(text)
        files.append(str(path))
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "E,F",
                             "--line-length", "120", "--ignore", "E741", *files],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


SOURCE_COMMENT = re.compile(r"  # (?P<file>[\w./-]+\.snn):(?P<line>\d+)$")


@pytest.mark.parametrize("path", BUILDABLE, ids=[p.stem for p in BUILDABLE])
def test_every_emitted_update_points_to_its_spec_line(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    rel = path.relative_to(ROOT)
    source = snnspec.generate(rel, backend="jax")
    lowered = snnspec.load_lowered(rel)
    name = partial(source_name, root=lowered.file)  # comments name files relative to the root spec
    comments = {(m["file"], int(m["line"])) for m in map(SOURCE_COMMENT.search, source.splitlines()) if m}
    for n in lowered.neurons.values():
        statements = [*n.updates, *n.lets, *(n.reset.updates if n.reset else ())]
        lines = [u.line for u in statements] + ([n.spike.line] if n.spike else [])
        lines += [p.line for p in n.params]
        for line in lines:
            assert (name(n.file), line) in comments, (n.name, line)
    for r in lowered.rules.values():
        for u in [*r.updates, *r.on_pre, *r.on_post, *r.params]:
            assert (name(r.file), u.line) in comments, (r.name, u.line)
    for net in lowered.networks.values():
        for p in net.paths:
            assert (name(net.file), p.line) in comments, p
        for la in net.layers:
            assert (name(net.file), la.line) in comments, la.name


# -- golden files --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_golden_file(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    rel = path.relative_to(ROOT).as_posix()  # the header quotes the path as given
    golden = GOLDEN / f"{path.stem}.py"
    text = snnspec.generate(rel, backend="jax")  # every example builds, plasticity included
    if os.environ.get("SNNSPEC_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file for {rel}: run with SNNSPEC_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"generated code for {rel} changed: review, then SNNSPEC_UPDATE_GOLDEN=1"


def test_golden_files_run():
    """The checked-in golden sources are valid modules whose networks initialise and run."""
    goldens = sorted(GOLDEN.glob("*.py"))
    assert goldens
    for golden in goldens:
        namespace: dict = {"__name__": f"golden_jax_{golden.stem}"}
        exec(compile(golden.read_text(), str(golden), "exec"), namespace)
        nets = [v for v in namespace.values() if isinstance(v, type) and "Network `" in (v.__doc__ or "")]
        assert nets, golden
        for cls in nets:
            params = cls.init(jax.random.PRNGKey(0))
            assert all(isinstance(v, jax.Array) for v in params.values())
            state = cls.init_state(params, 2)
            assert jax.tree_util.tree_leaves(state)


# -- CLI and compile -----------------------------------------------------------------------------

def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snnspec", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_build_target_jax(tmp_path):
    rel = "specs/examples/mnist_mlp.snn"
    out = tmp_path / "mnist_jax.py"
    result = cli("build", rel, "--target", "jax", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text() == snnspec.generate(rel, backend="jax")
    printed = cli("build", rel, "--target", "jax")
    assert printed.returncode == 0 and printed.stdout == out.read_text()
    # a spec no backend can run (batchnorm on a path inside a step loop): a clean diagnostic at the path, exit 1
    refused = tmp_path / "bn.snn"
    refused.write_text(BATCHNORM_IN_LOOP)
    failed = cli("build", str(refused), "--target", "jax")
    text = failed.stderr + failed.stdout
    assert failed.returncode == 1 and "batchnorm" in text and f"{refused}:7:" in text and "Traceback" not in text
    with pytest.raises(snnspec.SpecError):
        snnspec.generate(refused, backend="jax")


BATCHNORM_IN_LOOP = """from "std/neurons.snn" import Leaky
network BN {
    steps = 4
    input x[3] encode direct
    layer h = Leaky[4]
    x -> dense -> h
    h -> dense -> batchnorm -> h
    output h.spike count
}
"""


def test_compile_backend_jax_gives_the_public_surface():
    mod = snnspec.compile(ROOT / "specs" / "examples" / "mnist_mlp.snn", backend="jax")
    params = mod.MnistMLP.init(jax.random.PRNGKey(0))
    assert params["x_hidden.weight"].shape == (1000, 784)  # dense weight is [out, in], as torch
    out = mod.MnistMLP.apply(params, jnp.full((2, 784), 0.5), key=jax.random.PRNGKey(1))
    assert out._fields == ("out_spike",) and out.out_spike.shape == (2, 10)
    values = mod.Leaky.init((100,), beta=0.9)
    state = mod.Leaky.init_state(values, 8, (100,))
    spike, state = mod.Leaky.step(values, jnp.full((8, 100), 2.0), state)
    assert spike.shape == (8, 100) and float(spike.min()) == 1.0


def test_a_param_named_values_keeps_the_params_dict(tmp_path):
    """`params(values)` reads the dict `values`; a param of that name must not shadow it (nor the
    params after it), and the step must use the value given."""
    spec = tmp_path / "values.snn"
    spec.write_text("neuron V {\n    param values = 0.9 in [0, 1]\n    param gain = 2\n    state mem = 0\n"
                    "    mem <- values * mem + gain * I - detach(spiked)\n    spike when mem > 1\n}\n")
    V = snnspec.compile(spec, backend="jax").V
    assert V.params() == (pytest.approx(0.9), 2)
    p = V.params({"values": 0.5, "gain": 3.0})
    assert float(p.values) == 0.5 and float(p.gain) == 3.0
    assert float(V.params({"values": 7.0}).values) == 1.0  # its range still applies
    state = V.init_state(p, 1, (1,))
    for _ in range(2):
        _spike, state = V.step(p, jnp.full((1, 1), 0.1), state)
    np.testing.assert_allclose(np.asarray(state.mem), [[0.5 * 0.3 + 0.3]], rtol=1e-6)
