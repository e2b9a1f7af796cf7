"""The generated PyTorch source as a product (DESIGN.md "Contracts: generated code").

Self-contained (runs where snnspec cannot be imported; imports only torch, math, typing, plus an
optional accelerator inside a guarded `try`), deterministic (byte-identical across runs and hash
seeds), safe with any spec names, lint-clean, traceable (`# file.snn:LINE` on every emitted update),
pinned by golden files, and reachable from the CLI.

Golden files: tests/golden/torch/<example>.py hold `snnspec generate` of each example that the
torch backend builds. After an intended change to the generated code, rewrite them with

    SNNSPEC_UPDATE_GOLDEN=1 python -m pytest tests/test_torch_generated.py -k golden

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

import pytest
import torch

import snnspec
from snnspec.emit import BackendError
from snnspec.emit.writer import source_name

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.snn"))
GOLDEN = Path(__file__).resolve().parent / "golden" / "torch"
ALLOWED_IMPORTS = {"__future__", "math", "typing", "torch"}


def buildable() -> list[Path]:
    out = []
    for path in EXAMPLES:
        try:
            snnspec.generate(path)
        except BackendError:
            continue
        out.append(path)
    return out


BUILDABLE = buildable()


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result


# -- self-contained ------------------------------------------------------------------------------

ISOLATED = """
import sys
sys.modules["snnspec"] = None          # `import snnspec` now raises ImportError
{block_numba}
sys.path = [p for p in sys.path if p.rstrip("/") != {root!r}]
sys.path.insert(0, ".")
try:
    import snnspec
except ImportError:
    pass
else:
    raise SystemExit("snnspec is importable")
import torch
import mnist_mlp
torch.set_default_dtype(torch.float64)
torch.manual_seed(0)
net = mnist_mlp.MnistMLP()
x = torch.rand(4, 784)
out = net(x)
out.out_spike.sum().backward()
assert net.x_hidden.weight.grad is not None
assert not any(name.startswith("snnspec") for name in sys.modules if sys.modules[name] is not None)
torch.save({{"out": out.out_spike, "grad": net.x_hidden.weight.grad}}, "result.pt")
print("numba" in sys.modules and sys.modules["numba"] is not None)
"""


@pytest.mark.parametrize("numba", [True, False], ids=["with_numba_if_installed", "numba_blocked"])
def test_generated_file_runs_without_snnspec(tmp_path, numba):
    """A copy of the generated file runs in a fresh interpreter where snnspec cannot be imported,
    with the optional accelerator (numba) and with it blocked; both give what the in-process module gives."""
    (tmp_path / "mnist_mlp.py").write_text(snnspec.generate(ROOT / "specs" / "examples" / "mnist_mlp.snn"))
    block = "" if numba else 'sys.modules["numba"] = None'
    run_python(ISOLATED.format(block_numba=block, root=str(ROOT)), tmp_path)
    result = torch.load(tmp_path / "result.pt")
    mod = snnspec.compile(ROOT / "specs" / "examples" / "mnist_mlp.snn")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        net = mod.MnistMLP()
        x = torch.rand(4, 784)
        out = net(x)
    finally:
        torch.set_default_dtype(old)
    out.out_spike.sum().backward()
    assert out.out_spike.sum() > 0
    assert torch.equal(out.out_spike, result["out"])
    torch.testing.assert_close(net.x_hidden.weight.grad, result["grad"], rtol=1e-10, atol=1e-12)


def imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(top-level module, guarded by `try ... except ImportError`) for every import in a module."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], guarded) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append(((node.module or "").split(".")[0], guarded))
        if isinstance(node, ast.Try):
            catches = any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                          for h in node.handlers)
            for child in node.body:
                visit(child, guarded or catches)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return found


@pytest.mark.parametrize("path", BUILDABLE, ids=[p.stem for p in BUILDABLE])
def test_generated_code_imports_only_torch_math_typing(path):
    for module, guarded in imports(ast.parse(snnspec.generate(path))):
        assert module != "snnspec"
        assert module in ALLOWED_IMPORTS or guarded, f"unguarded import of {module}"


# -- deterministic -------------------------------------------------------------------------------

DETERMINISM = """
from "std/neurons.snn" import Leaky, LIF
network Many {
    dt = 1 ms
    steps = 4
    input x[3] encode direct
    layer a = Leaky[4]
    layer b = LIF(tau = 7 ms)[5]
    x -> dense -> a
    a -> dense -> b
    a.mem -> dense -> b
    b -> dense -> a
    b.v -> dense -> a
    output a.mem trace, b.v trace, a.spike count, b.spike rate
}
"""

HASHES = """
import hashlib, json, sys
import snnspec
paths = json.loads(sys.argv[1])
out = {p: hashlib.sha256(snnspec.generate(p).encode()).hexdigest() for p in paths}
out["text"] = hashlib.sha256(snnspec.generate(text=sys.argv[2], name="many.snn").encode()).hexdigest()
print(json.dumps(out))
"""


def test_generation_is_deterministic_across_calls_and_hash_seeds():
    paths = [str(p.relative_to(ROOT)) for p in BUILDABLE]
    first = {p: snnspec.generate(p) for p in paths}
    assert first == {p: snnspec.generate(p) for p in paths}
    expected = {p: hashlib.sha256(text.encode()).hexdigest() for p, text in first.items()}
    expected["text"] = hashlib.sha256(snnspec.generate(text=DETERMINISM, name="many.snn").encode()).hexdigest()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", HASHES, json.dumps(paths), DETERMINISM], cwd=ROOT, env=env,
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
    param {forward} = 2
    param {p} = 0.3
    param {gate} = 0.2
    state {x} = 0
    state {state} = 0
    state {active} = 0
    state {refractory_left} = 0
    input {i}
    input {out} = 0
    let {dt} = {p} * {forward}
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
    input {torch}[3] encode direct
    input {fire}[2] encode latency(tau = 2, threshold = 0.1)
    input {previous}[2] encode delta(threshold = 0.05)
    layer {L1} = {N}[4]
    layer {L2} = {N}[4]
    layer {L3} = {N}[4]
    {torch} -> dense -> {L1}.{i}
    {fire} -> dense -> {L1}.{out}
    {previous} -> dense -> {L2}.{out}
    {L1} -> dense -> {L2}.{i}
    {L2}.{x} -> dense -> {L3}.{i}
    {L3}.{state} -> dense -> {L2}.{i}
    output {L1}.spike count, {L2}.{state} trace, {o3} = {L3}.{x} last, {L2}.spike rate
}}
"""
# names that generated code uses itself (modules, builtins, keywords, nn.Module methods, locals of
# step/run/forward, fused-kernel arguments); `state` and `spike` are keywords in a neuron, so the
# keys of those names hold other locals of step/run (`stacked`, `rest`)
TRICKY = dict(N="torch", math="math", self="self", lam="lambda", print="print", forward="forward", p="p", gate="gate",
              x="x", state="stacked", active="active", refractory_left="refractory_left", i="i", out="out", dt="dt_",
              zeros="zeros", spike="rest", NET="math", torch="torch", fire="fire", previous="previous",
              L1="print", L2="forward", L3="lambda", o3="x")
PLAIN = {**{k: f"n{k.lower()}" for k in TRICKY}, "N": "Cell", "NET": "Net", "dt": "w_dt"}


@pytest.fixture
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_spec_names_never_shadow_generated_names(float64_default):
    if True:
        nets = []
        for names in (TRICKY, PLAIN):
            mod = snnspec.compile(text=TEMPLATE.format(**names), name=f"names_{names['N']}.snn")
            nets.append(getattr(mod, names["NET"][0].upper() + names["NET"][1:])())
        tricky, plain = nets
        with torch.no_grad():
            for a, b in zip(tricky.parameters(), plain.parameters(), strict=True):
                assert a.shape == b.shape
                b.copy_(a)
        gen = torch.Generator().manual_seed(0)
        x = torch.rand((3, 3), generator=gen) * 4
        fire = torch.rand((3, 2), generator=gen)
        seq = torch.rand((9, 3, 2), generator=gen)
        out_tricky, out_plain = tricky(x, fire, seq), plain(x, fire, seq)
        assert out_tricky._fields == ("print_spike", "forward_stacked", "x", "forward_spike")
        assert out_tricky[0].sum() > 0 and out_tricky[3].sum() > 0
        for a, b in zip(out_tricky, out_plain, strict=True):
            assert torch.equal(a, b)
        (out_tricky[1].sum() + out_tricky[0].sum()).backward()
        (out_plain[1].sum() + out_plain[0].sum()).backward()
        for a, b in zip(tricky.parameters(), plain.parameters(), strict=True):
            assert (a.grad is None) == (b.grad is None)
            if a.grad is not None:
                assert torch.equal(a.grad, b.grad)


def test_class_name_clashes_are_diagnosed():
    text = """
neuron leaky {
    state v = 0
    v <- I
}
network Leaky {
    steps = 2
    input x[2] encode direct
    layer a = leaky[2]
    x -> dense -> a
    output a.v trace
}
"""
    with pytest.raises(BackendError) as err:
        snnspec.generate(text=text, name="clash.snn")
    assert "'Leaky'" in str(err.value) and "leaky" in str(err.value)


# -- lint-clean, traceable -----------------------------------------------------------------------

def lint_targets() -> list[tuple[str, str]]:
    return [(p.stem, snnspec.generate(p)) for p in BUILDABLE] + [
        ("names", snnspec.generate(text=TEMPLATE.format(**TRICKY), name="names.snn"))]


def test_ruff_clean(tmp_path):
    """`ruff check --select E,F` passes (line length 120 included), except E741: the language's default
    input is named `I` (LANGUAGE.md §2), and spec names are the neuron's public argument names
    (`neuron(I=...)`), so they are not renamed."""
    pytest.importorskip("ruff")
    files = []
    for stem, text in lint_targets():
        path = tmp_path / f"{stem}.py"
        path.write_text(text)
        files.append(str(path))
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "E,F",
                             "--line-length", "120", "--ignore", "E741", *files],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


SOURCE_COMMENT = re.compile(r"  # (?P<file>[\w./-]+\.snn):(?P<line>\d+)$")


def spec_line(file: str, line: int, folder: Path) -> str:
    """A line of a file as generated code names it: `std/...`, or relative to the root spec's folder."""
    path = ROOT / "specs" / file if file.startswith("std/") else ROOT / folder / file
    return path.read_text().splitlines()[line - 1]


def logical_lines(source: str) -> list[list[str]]:
    """The physical lines of each statement: a line whose brackets are open continues onto the next."""
    out: list[list[str]] = []
    depth = 0
    for line in source.splitlines():
        code = line.split("  # ")[0]
        if depth == 0:
            out.append([line])
        else:
            out[-1].append(line)
        depth = max(0, depth + sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}"))
    return out


@pytest.mark.parametrize("path", BUILDABLE, ids=[p.stem for p in BUILDABLE])
def test_every_emitted_update_points_to_its_spec_line(path, monkeypatch):
    """Every lowered update, let, spike and reset of every neuron, every layer and every path has a
    `# file.snn:LINE` comment in the generated code; every line of a `step` that computes with
    params carries one; and the line it names is that statement in the spec."""
    monkeypatch.chdir(ROOT)
    rel = path.relative_to(ROOT)
    source = snnspec.generate(rel)
    lowered = snnspec.load_lowered(rel)
    name = partial(source_name, root=lowered.file)  # comments name files relative to the root spec
    comments = {(m["file"], int(m["line"])) for m in map(SOURCE_COMMENT.search, source.splitlines()) if m}
    for n in lowered.neurons.values():
        statements = [*n.updates, *n.lets, *(n.reset.updates if n.reset else ())]
        lines = [u.line for u in statements] + ([n.spike.line] if n.spike else [])
        for line in lines:
            assert (name(n.file), line) in comments, (n.name, line)
    for net in lowered.networks.values():
        for item in (*net.layers, *net.paths):
            assert (name(net.file), item.line) in comments, item
    in_step = False
    for statement in logical_lines(source):  # a statement broken over lines carries its comment once
        stripped = statement[0].strip()
        if stripped.startswith("def "):
            in_step = stripped.startswith("def step(")
            continue
        if in_step and any("p." in t or ".apply(" in t for t in statement) and not stripped.startswith(
                ("return", '"""')):
            assert any(SOURCE_COMMENT.search(t) for t in statement), statement
    keywords = ("param ", "let ", "spike when", "on spike", "layer ", "state ", "input ")
    for file, line in comments:
        code = spec_line(file, line, rel.parent).split("#")[0].strip()
        assert code.startswith(keywords) or "<-" in code or "/dt" in code or "->" in code or "{" in code or \
            re.match(r"^\w+\s*([-+*]?=)", code), (file, line, code)


# -- golden files --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_golden_file(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    rel = path.relative_to(ROOT).as_posix()  # the header quotes the path as given
    golden = GOLDEN / f"{path.stem}.py"
    try:
        text = snnspec.generate(rel)
    except BackendError as err:
        # a valid example the torch backend does not print (yet): a clean diagnostic, no golden file
        diag = err.diagnostics[0]
        assert diag.span is not None and diag.span.file == rel
        assert "not supported" in diag.message
        assert not golden.exists(), f"{golden} is stale: the example no longer builds"
        pytest.skip(f"the torch backend does not build {rel} yet: {diag.message}")
    if os.environ.get("SNNSPEC_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file for {rel}: run with SNNSPEC_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"generated code for {rel} changed: review, then SNNSPEC_UPDATE_GOLDEN=1"


def test_golden_files_run():
    """The checked-in golden sources are valid modules whose network classes construct."""
    for golden in sorted(GOLDEN.glob("*.py")):
        namespace: dict = {"__name__": f"golden_{golden.stem}"}
        exec(compile(golden.read_text(), str(golden), "exec"), namespace)
        nets = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)
                and "Network `" in (v.__doc__ or "")]
        assert nets, golden
        for cls in nets:
            cls()


# -- CLI -----------------------------------------------------------------------------------------

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


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snnspec", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_build_writes_prints_and_reports(tmp_path):
    rel = "specs/examples/mnist_mlp.snn"
    out = tmp_path / "sub" / "mnist.py"
    result = cli("build", rel, "--target", "torch", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text() == snnspec.generate(rel)
    printed = cli("build", rel)
    assert printed.returncode == 0 and printed.stdout == out.read_text()
    # a spec no backend can run (batchnorm on a path inside a step loop): a clean diagnostic from the
    # lowering, which `check` reports too; exit 1, no file written
    refused = tmp_path / "bn.snn"
    refused.write_text(BATCHNORM_IN_LOOP)
    failed = cli("build", str(refused), "-o", str(tmp_path / "x.py"))
    assert failed.returncode == 1
    text = failed.stderr + failed.stdout
    assert "batchnorm" in text and f"{refused}:7:" in text and "Traceback" not in text
    assert not (tmp_path / "x.py").exists()
    with pytest.raises(snnspec.SpecError):
        snnspec.generate(refused)
    checked = cli("check", str(refused))
    assert checked.returncode == 1 and "batchnorm" in checked.stderr + checked.stdout
    broken = tmp_path / "broken.snn"
    broken.write_text("neuron N {\n    state v = 0\n    v <- w\n}\n")
    failed = cli("build", str(broken))
    assert failed.returncode == 1 and "Traceback" not in failed.stderr and failed.stdout == ""
