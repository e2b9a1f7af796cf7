"""The on-disk cache behind a fast `snnspec check` (snnspec/cache.py): hits equal fresh work, keys follow
every input and the compiler's code, bad entries are derived again, and a warm check imports no sympy."""

from __future__ import annotations

import importlib
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


# ---- the cached result of a whole check ----------------------------------------------------------------------


@pytest.fixture
def fresh_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The roots of the checks run afresh (not served from the cache) from now on."""
    checker = importlib.import_module("snnspec.check")  # the module: `snnspec.check` is the function
    seen: list[str] = []
    real = checker.check_program

    def check_program(program, diags):  # type: ignore[no-untyped-def]
        seen.append(program.root)
        return real(program, diags)

    monkeypatch.setattr(checker, "check_program", check_program)
    return seen


@pytest.mark.parametrize("path", SPECS, ids=[p.relative_to(ROOT / "specs").as_posix() for p in SPECS])
def test_a_cached_check_equals_a_fresh_one(path: Path, cache_dir: Path, fresh_checks: list[str]) -> None:
    fresh = snnspec.check(path)
    assert len(fresh_checks) == 1 and _entries(cache_dir, "checked")
    assert snnspec.check(path) == fresh
    assert len(fresh_checks) == 1


WARNS = """
neuron Quiet {
    state v = 0
    method euler
    v <- v * 0.5
}
"""


def test_a_cached_check_replays_its_warnings(cache_dir: Path, fresh_checks: list[str], tmp_path: Path) -> None:
    spec = tmp_path / "quiet.snn"
    spec.write_text(WARNS)
    fresh = snnspec.check(spec)
    (warning,) = fresh
    assert warning.severity == "warning" and "has no effect" in warning.message
    assert snnspec.check(spec) == fresh
    assert fresh_checks == [str(spec)]


def test_editing_an_imported_file_checks_again(cache_dir: Path, fresh_checks: list[str], tmp_path: Path) -> None:
    """The entry is keyed by the root file; the files it imports are compared when it is read."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "own.snn").write_text(OWN_NEURON.split("network")[0])
    root = tmp_path / "root.snn"
    root.write_text('from "lib/own.snn" import Mine\n' + "network" + OWN_NEURON.split("network")[1])
    assert snnspec.check(root) == []
    assert snnspec.check(root) == []
    assert len(fresh_checks) == 1
    (tmp_path / "lib" / "own.snn").write_text(OWN_NEURON.split("network")[0].replace("dv/dt", "dv/dtt"))
    errors = snnspec.check(root)
    assert len(fresh_checks) == 2
    assert errors and errors[0].severity == "error" and errors[0].span is not None
    assert errors[0].span.file == str(tmp_path / "lib" / "own.snn") and errors[0].span.line == 6


def test_a_deleted_import_checks_again(cache_dir: Path, fresh_checks: list[str], tmp_path: Path) -> None:
    (tmp_path / "own.snn").write_text(OWN_NEURON.split("network")[0])
    root = tmp_path / "root.snn"
    root.write_text('from "own.snn" import Mine\n' + "network" + OWN_NEURON.split("network")[1])
    assert snnspec.check(root) == snnspec.check(root) == []
    (tmp_path / "own.snn").unlink()
    (error,) = (d for d in snnspec.check(root) if "cannot import" in d.message)
    assert error.span is not None and error.span.line == 1
    assert len(fresh_checks) == 2


def test_a_check_with_errors_is_not_stored(cache_dir: Path, fresh_checks: list[str]) -> None:
    text = "neuron N {\n    state v = 0\n    dv/dt = -w\n}\n"
    for _ in range(2):
        (error,) = snnspec.check(text=text, name="bad.snn")
        assert error.severity == "error" and error.span is not None and error.span.line == 3
    assert fresh_checks == ["bad.snn", "bad.snn"]
    assert _entries(cache_dir, "checked") == []


def test_the_result_follows_the_name_and_the_folder(cache_dir: Path, fresh_checks: list[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The same text under another name; the same file, importing a file of the same relative path but
    another text, from another folder: each checked afresh, and what its diagnostics say follows."""
    snnspec.check(text=WARNS, name="a.snn")
    (d,) = snnspec.check(text=WARNS, name="b.snn")
    assert d.span is not None and d.span.file == "b.snn"
    for folder, blank_lines in (("one", 0), ("two", 2), ("two", 2)):  # the last one served
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "root.snn").write_text('import "lib.snn"\n')
        (tmp_path / folder / "lib.snn").write_text("\n" * blank_lines + WARNS)
        monkeypatch.chdir(tmp_path / folder)
        (d,) = snnspec.check("root.snn")
        assert d.span is not None and (d.span.file, d.span.line) == ("lib.snn", 2 + blank_lines)  # the neuron's line
    assert fresh_checks == ["a.snn", "b.snn", "root.snn", "root.snn"]


def test_a_cached_check_builds_no_model_of_the_checked_or_lowered_ir(cache_dir: Path) -> None:
    """A warm `snnspec check` imports only the IR's `span.py` (the diagnostics' `Span`) and no stage."""
    code = ("import sys, snnspec.cli\nsys.argv = ['snnspec', 'check', sys.argv[1]]\ntry:\n    snnspec.cli.main()\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(' '.join(m for m in sys.modules if m.startswith('snnspec')))")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "SNNSPEC_CACHE_DIR": str(cache_dir), "PYTHONPATH": path}
    run = [sys.executable, "-c", code, str(MNIST)]
    cold = set(subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout.split())
    assert {"snnspec.check", "snnspec.lower", "snnspec.ir.spec", "snnspec.ir.lowered"} <= cold
    warm = set(subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout.split())
    assert {m for m in warm if m.startswith("snnspec.ir.")} == {"snnspec.ir.span"}
    assert not warm & {"snnspec.check", "snnspec.check_network", "snnspec.lower", "snnspec.parse", "snnspec.expr"}


def test_every_ir_name_is_importable_from_snnspec_ir() -> None:
    """`snnspec.ir` imports its modules on first use; every model and alias they define is still one of
    its names, the same object, as when it imported them all."""
    names = 0
    for sub in ("span", "base", "facts", "spec", "kernel", "program", "lowered"):
        module = importlib.import_module(f"snnspec.ir.{sub}")
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) == module.__name__ and isinstance(value, type):
                assert getattr(ir, name) is value, name
                names += 1
    assert names > 70
    for alias in ("Expr", "KStatement", "Statement", "Declaration", "Method", "GATE"):
        assert getattr(ir, alias) is not None
    with pytest.raises(AttributeError, match="no attribute 'NoSuchModel'"):
        ir.NoSuchModel  # noqa: B018


def test_importing_the_checker_late_keeps_snnspec_check_a_function() -> None:
    """`snnspec.check` is the function even where the checker's module is imported after the package."""
    code = "import snnspec, snnspec.check\nfrom snnspec.check import check_program\nprint(callable(snnspec.check))"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.stdout.strip() == "True"


def test_text_that_utf8_cannot_hold_is_checked_without_the_cache(cache_dir: Path, fresh_checks: list[str]) -> None:
    """A lone surrogate (possible in a str given to the API, not in a file read as UTF-8) has no key: the
    check runs afresh each time, instead of failing with a UnicodeEncodeError."""
    text = WARNS + "# \ud800\n"
    for _ in range(2):
        (warning,) = snnspec.check(text=text, name="odd.snn")
        assert warning.span is not None and warning.span.line == 2
    assert fresh_checks == ["odd.snn", "odd.snn"]
    assert _entries(cache_dir, "checked") == [] and _entries(cache_dir, "parsed") != []
