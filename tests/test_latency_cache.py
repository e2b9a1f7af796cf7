"""The on-disk cache behind a fast `snnspec check` (snnspec/cache.py): hits equal fresh work, keys follow
every input and the compiler's code, bad entries are derived again, and a warm check imports no sympy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import lark
import pytest

import snnspec
import snnspec.cache
import snnspec.loader
import snnspec.lower.neuron
import snnspec.parse
from snnspec import ir
from snnspec.cache import cached, write_atomic
from snnspec.diagnostics import Diagnostics

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.snn"))
MNIST = ROOT / "specs" / "examples" / "mnist_mlp.snn"

OWN_NEURON = """
neuron Mine {
    param tau = 10 ms
    param threshold = 1
    state v = 0
    dv/dt = (I - v) / tau
    spike when v > threshold surrogate atan(alpha = 2)
    on spike { v = 0 }
}
network N {
    dt = 1 ms
    steps = 4
    input x[3] encode rate
    layer h = Mine[2]
    x -> dense -> h
    output h.spike count
}
"""


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SNNSPEC_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def lowerings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the neurons and rules lowered afresh (not served by the cache) from now on."""
    seen: list[str] = []
    neuron, rule = snnspec.lower.neuron.lower_neuron, snnspec.lower.neuron.lower_rule

    def lower_neuron(n, surrogates, diags):  # type: ignore[no-untyped-def]
        seen.append(n.name)
        return neuron(n, surrogates, diags)

    def lower_rule(r, diags):  # type: ignore[no-untyped-def]
        seen.append(r.name)
        return rule(r, diags)

    monkeypatch.setattr(snnspec.lower.neuron, "lower_neuron", lower_neuron)
    monkeypatch.setattr(snnspec.lower.neuron, "lower_rule", lower_rule)
    return seen


def _entries(cache_dir: Path, folder: str = "lowered") -> list[Path]:
    return sorted((cache_dir / folder).glob("*.jsonl"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_a_hit_equals_a_fresh_lowering(path: Path, cache_dir: Path, lowerings: list[str]) -> None:
    fresh = snnspec.load_lowered(path)
    assert lowerings and _entries(cache_dir)
    lowerings.clear()
    again = snnspec.load_lowered(path)
    assert lowerings == []
    assert again == fresh
    assert again.model_dump_json() == fresh.model_dump_json()


def test_editing_a_neuron_lowers_it_again(cache_dir: Path, lowerings: list[str], tmp_path: Path) -> None:
    spec = tmp_path / "own.snn"
    spec.write_text(OWN_NEURON)
    before = snnspec.load_lowered(spec)
    assert lowerings == ["Mine"]
    spec.write_text(OWN_NEURON.replace("param threshold = 1", "param threshold = 2"))
    after = snnspec.load_lowered(spec)
    assert lowerings == ["Mine", "Mine"]
    assert len(_entries(cache_dir)) == 2
    assert [p.default for p in before.neurons["Mine"].params] != [p.default for p in after.neurons["Mine"].params]


def test_moving_a_neuron_lowers_it_again(cache_dir: Path, lowerings: list[str], tmp_path: Path) -> None:
    """Spans are part of the key: the lowered lines must follow the source."""
    spec = tmp_path / "own.snn"
    spec.write_text(OWN_NEURON)
    before = snnspec.load_lowered(spec)
    spec.write_text("\n\n" + OWN_NEURON)
    after = snnspec.load_lowered(spec)
    assert lowerings == ["Mine", "Mine"]
    assert after.neurons["Mine"].params[0].line == before.neurons["Mine"].params[0].line + 2


def test_other_compiler_code_lowers_again(cache_dir: Path, lowerings: list[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    snnspec.load_lowered(MNIST)
    snnspec.load_lowered(MNIST)
    assert lowerings == ["Leaky"]
    monkeypatch.setattr(snnspec.cache, "code_fingerprint", lambda: "another version of the compiler")
    snnspec.load_lowered(MNIST)
    assert lowerings == ["Leaky", "Leaky"]
    assert len(_entries(cache_dir)) == 2


def test_the_fingerprint_follows_the_package_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "snnspec"
    shutil.copytree(ROOT / "snnspec", package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(snnspec.cache, "__file__", str(package / "cache.py"))

    def fingerprint() -> str:
        snnspec.cache.code_fingerprint.cache_clear()
        return snnspec.cache.code_fingerprint()

    try:
        first = fingerprint()
        assert fingerprint() == first
        with (package / "lower" / "neuron.py").open("a") as f:
            f.write("# an edit\n")
        assert fingerprint() != first
    finally:
        snnspec.cache.code_fingerprint.cache_clear()


@pytest.mark.parametrize("garbage", ["", "{not json", '{"name": "Leaky"}', "\0\0\0", '"a string"\n'])
def test_a_corrupt_entry_is_lowered_again(garbage: str, cache_dir: Path, lowerings: list[str]) -> None:
    fresh = snnspec.load_lowered(MNIST)
    (entry,) = _entries(cache_dir)
    entry.write_text(garbage)
    lowerings.clear()
    assert snnspec.load_lowered(MNIST) == fresh
    assert lowerings == ["Leaky"]
    assert ir.LNeuron.model_validate_json(entry.read_text().split("\n")[0]) == fresh.neurons["Leaky"]


def test_an_unwritable_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             lowerings: list[str]) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("SNNSPEC_CACHE_DIR", str(blocker / "cache"))  # cannot be made: a file is in the way
    fresh = snnspec.load_lowered(MNIST)
    assert snnspec.load_lowered(MNIST) == fresh
    assert lowerings == ["Leaky", "Leaky"]
    assert not write_atomic(blocker / "cache" / "x", "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file"]


def test_write_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    file = tmp_path / "sub" / "entry.jsonl"
    assert write_atomic(file, "one\n")
    assert write_atomic(file, b"two\n")
    assert file.read_text() == "two\n"
    assert [p.name for p in file.parent.iterdir()] == ["entry.jsonl"]


def test_warnings_are_stored_and_replayed(cache_dir: Path) -> None:
    value = ir.Update(var="v", value=ir.Num(value=1.0))
    span = ir.Span(file="x.snn", line=3, column=1, end_line=3, end_column=5)

    def work(diags: Diagnostics) -> ir.Update:
        diags.warning("a warning\nover two lines \u2028 and a separator", span, "a hint")
        return value

    def must_not_run(diags: Diagnostics) -> ir.Update:
        raise AssertionError("served from the cache")

    first, second = Diagnostics(), Diagnostics()
    assert cached("test", ir.Update, ("input",), work, first) == value
    assert cached("test", ir.Update, ("input",), must_not_run, second) == value
    assert second.items == first.items and len(first.items) == 1


def test_errors_are_not_stored(cache_dir: Path, lowerings: list[str]) -> None:
    text = "neuron Bad {\n    state v = 0\n    method exact\n    dv/dt = v * v + I\n}\n"
    for _ in range(2):
        errors = [d for d in snnspec.check(text=text, name="bad.snn") if d.severity == "error"]
        assert errors and "exact" in errors[0].message
    assert lowerings == ["Bad", "Bad"]
    assert _entries(cache_dir) == []


SPECS = sorted((ROOT / "specs").glob("**/*.snn"))


@pytest.mark.parametrize("path", SPECS, ids=[p.relative_to(ROOT / "specs").as_posix() for p in SPECS])
def test_a_parsed_file_from_the_cache_equals_a_fresh_parse(path: Path, cache_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = snnspec.loader.load_program(path, Diagnostics()).modules
    assert _entries(cache_dir, "parsed")

    def must_not_run(*args: object) -> None:
        raise AssertionError("served from the cache")

    monkeypatch.setattr(snnspec.parse, "parse", must_not_run)
    served = snnspec.loader.load_program(path, Diagnostics()).modules
    assert served == fresh
    assert [m.model_dump_json() for m in served.values()] == [m.model_dump_json() for m in fresh.values()]


def test_syntax_errors_are_not_stored(cache_dir: Path) -> None:
    for _ in range(2):
        errors = [d for d in snnspec.check(text="neuron N {\n    state v = \n}\n", name="bad.snn")
                  if d.severity == "error"]
        assert errors and errors[0].span is not None and errors[0].span.line == 2
    assert len(_entries(cache_dir, "parsed")) == 1  # std/surrogates.snn only


def test_corrupt_parser_tables_are_built_again(cache_dir: Path) -> None:
    text = MNIST.read_text()
    snnspec.parse.parser.cache_clear()
    try:
        tree = snnspec.parse.parser().parse(text)
        (tables,) = (cache_dir / "parser").iterdir()
        good = tables.read_bytes()
        for garbage in (b"", good[: len(good) // 2], b"not a pickle"):
            tables.write_bytes(garbage)
            snnspec.parse.parser.cache_clear()
            assert snnspec.parse.parser().parse(text) == tree
            with tables.open("rb") as f:  # written again
                assert lark.Lark.load(f).parse(text) == tree
    finally:
        snnspec.parse.parser.cache_clear()


def _run_check(cache_dir: Path, spec: Path) -> set[str]:
    """Run `snnspec check` in a fresh process; the heavy modules it imported."""
    code = ("import sys, snnspec.cli\nsys.argv = ['snnspec', 'check', sys.argv[1]]\ntry:\n    snnspec.cli.main()\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(' '.join(m for m in ('sympy', 'lark', 'torch', 'jax', 'numpy') if m in sys.modules))")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "SNNSPEC_CACHE_DIR": str(cache_dir), "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, env=env,
                          check=True)
    return set(proc.stdout.split())


def test_a_warm_check_imports_neither_sympy_nor_lark(cache_dir: Path) -> None:
    cold = _run_check(cache_dir, MNIST)
    assert {"sympy", "lark"} <= cold
    warm = _run_check(cache_dir, MNIST)
    assert not warm & {"sympy", "lark", "torch", "jax", "numpy"}, warm
