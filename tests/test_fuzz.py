"""No input crashes the front end (LANGUAGE.md §8): property tests with hypothesis.

`snnspec.check` must return diagnostics for anything (random text, token soups from the
language's vocabulary, mutations of every std and example spec, absurd nesting) and never
raise or hang; `snnspec.load` must raise nothing but `snnspec.SpecError`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pipeline_harness as h
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snnspec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*/*.snn"))
SPEC_TEXT = {p.relative_to(ROOT / "specs").as_posix(): p.read_text(encoding="utf-8") for p in SPECS}

# SNNSPEC_FUZZ_SCALE=20 runs twenty times as many examples (a longer hunt than the test suite's).
SCALE = max(1, int(os.environ.get("SNNSPEC_FUZZ_SCALE", "1")))
FAST = settings(max_examples=100 * SCALE, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
# A mutated spec that still parses is checked and lowered (sympy), which for all of std/neurons.snn
# takes about a second, and one integration may use the 5 s symbolic budget (lower/budget.py)
# before it falls back to euler: the deadline leaves room for that, and still catches a hang.
SLOW = settings(max_examples=30 * SCALE, deadline=12000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TOKENS = h.TOKENS  # the language's vocabulary, shared with the whole-pipeline fuzzer


def check_never_raises(text: str) -> list[snnspec.Diagnostic]:
    diagnostics = snnspec.check(text=text, name="fuzz.snn")
    assert isinstance(diagnostics, list)
    for d in diagnostics:
        assert d.severity in ("error", "warning")
        assert d.message
        if d.span is not None:
            assert d.span.line >= 1 and d.span.column >= 1
    return diagnostics


@pytest.fixture(scope="module", autouse=True)
def warm_up() -> None:
    """Build the parser and import sympy once, so deadlines measure the checks alone."""
    for text in SPEC_TEXT.values():
        snnspec.check(text=text, name="fuzz.snn")


# ---- random input ---------------------------------------------------------------------------------


@FAST
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    check_never_raises(text)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_as_text(data: bytes) -> None:
    check_never_raises(data.decode("utf-8", errors="replace"))


separators = st.sampled_from([" ", " ", " ", "\n", "; ", ""])


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(st.sampled_from(TOKENS), max_size=60))
    return "".join(t + draw(separators) for t in tokens)


@FAST
@given(token_soup())
def test_token_soup(text: str) -> None:
    check_never_raises(text)


@st.composite
def wrapped_soup(draw: st.DrawFn) -> str:
    """A soup inside a well-formed block, so it reaches the checks more often than a bare soup."""
    kind = draw(st.sampled_from(["neuron", "rule", "network"]))
    body = draw(token_soup())
    header = 'from "std/neurons.snn" import Leaky\n' if kind == "network" else ""
    return f"{header}{kind} Fuzz {{\n    {body}\n}}\n"


@FAST
@given(wrapped_soup())
def test_token_soup_in_a_block(text: str) -> None:
    check_never_raises(text)


@st.composite
def statements(draw: st.DrawFn) -> str:
    """Random neuron bodies built from well-formed statements with random expressions."""
    exprs = st.recursive(
        st.sampled_from(["v", "I", "tau", "1", "2.5 mV", "10 ms", "dt", "t", "spiked", "pi", "0.5 nA", "q"]),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["exp", "log", "abs", "max", "clip", "heaviside", "foo"]),
                      st.lists(inner, min_size=1, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            inner.map(lambda e: f"-{e}"),
        ),
        max_leaves=8,
    )
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        form = draw(st.sampled_from(["param tau = {}", "state v = {}", "input I = {}", "let q = {}", "dv/dt = {}",
                                     "v <- {}", "spike when v > {}", "on spike {{ v = {} }}", "refractory {}",
                                     "param tau = {} in [0, 1]"]))
        lines.append(form.format(draw(exprs)))
    method = draw(st.sampled_from(["", "method exact", "method euler", "method rk4", "method exponential_euler"]))
    return "neuron Fuzz {\n    " + "\n    ".join([*lines, method]) + "\n}\n"


@SLOW
@given(statements())
def test_random_well_formed_neurons(text: str) -> None:
    check_never_raises(text)


# ---- mutations of real specs ------------------------------------------------------------------------

@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    return h.mutated(text, h.HypothesisChooser(draw))


@pytest.mark.parametrize("name", sorted(SPEC_TEXT))
def test_mutated_spec(name: str) -> None:
    @SLOW
    @given(mutated(SPEC_TEXT[name]))
    def run(text: str) -> None:
        check_never_raises(text)

    run()


# ---- load raises only SpecError ------------------------------------------------------------------------


@SLOW
@given(st.one_of(token_soup(), wrapped_soup(), st.sampled_from(sorted(SPEC_TEXT)).flatmap(
    lambda n: mutated(SPEC_TEXT[n]))))
def test_load_raises_only_spec_error(text: str) -> None:
    for load in (snnspec.load, snnspec.load_lowered):
        try:
            load(text=text, name="fuzz.snn")
        except snnspec.SpecError as err:
            assert err.diagnostics
            assert any(d.severity == "error" for d in err.diagnostics)


# ---- deep nesting ---------------------------------------------------------------------------------------


def _neuron(expr: str) -> str:
    return f"neuron Deep {{\n    state v = 0\n    v <- {expr}\n}}\n"


DEEP = {
    "parentheses": _neuron("(" * 10000 + "v" + ")" * 10000),
    "unary_minus": _neuron("-" * 5000 + "v"),
    "long_sum": _neuron(" + ".join(["v"] * 3000)),
    "long_product": _neuron(" * ".join(["v"] * 3000)),
    "power_tower": _neuron("**".join(["2"] * 3000)),
    "short_power_tower": _neuron("v + 2**2**2**2**2**2"),
    "huge_power": _neuron("v + 10**10**10"),
    "nested_calls": _neuron("exp(" * 3000 + "v" + ")" * 3000),
    "nested_calls_in_a_param": "neuron Deep {\n    param p = " + "abs(" * 150 + "1" + ")" * 150
                               + "\n    state v = 0\n    v <- v * p\n}\n",
    "nested_brackets_in_a_shape": "network N {\n    input x[" + "[" * 3000 + "1" + "]" * 3000 + "] encode rate\n}\n",
    "nested_lets": "neuron Deep {\n    state v = 0\n"
                   + "".join(f"    let a{i} = " + "sin(" * 60 + (f"a{i - 1}" if i else "v") + ")" * 60 + "\n"
                             for i in range(40))
                   + "    v <- a39\n    spike when a39 > 1\n}\n",
    "nested_ode_rk4": "neuron Deep {\n    state v = 0\n    method rk4\n    dv/dt = " + "sin(" * 80 + "v"
                      + ")" * 80 + "\n}\n",
    "long_on_spike": "neuron Deep {\n    state v = 0\n    v <- v + I\n    spike when v > 1\n    on spike { "
                     + "; ".join(["v = v * 2"] * 1500) + " }\n}\n",
    "many_declarations": "".join(f"neuron N{i} {{ state v = 0; v <- v + I }}\n" for i in range(300)),
    "long_line": _neuron("v" + " " * 100000 + "+ 1"),
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_input_gives_a_diagnostic_or_passes(name: str) -> None:
    check_never_raises(DEEP[name])
    with contextlib.suppress(snnspec.SpecError):
        snnspec.load(text=DEEP[name], name="deep.snn")


def test_deep_nesting_is_reported_at_its_line() -> None:
    text = "neuron Deep {\n    state v = 0\n\n    v <- " + "-" * 5000 + "v\n}\n"
    errors = [d for d in snnspec.check(text=text, name="deep.snn") if d.severity == "error"]
    assert errors and errors[0].span is not None and errors[0].span.line == 4


# ---- crashes found by fuzzing, kept as plain examples ----------------------------------------------------

_NET = 'from "std/neurons.snn" import Leaky\nnetwork N {{\n    steps = 3\n    input x[4] encode rate\n' \
       '    layer h = Leaky[4]\n    {}\n    output h.spike count\n}}\n'
FOUND = {
    # the unit of dt was evaluated after it had been reported unknown (KeyError)
    "unknown_unit_in_dt": (_NET.format("dt = 1 specs\n    x -> dense -> h"), "unknown unit 'specs'"),
    # the same, in a `train` argument
    "unknown_unit_in_train": (_NET.format("x -> dense -> h\n    train { optimizer adam(lr = 1 qq) }"),
                              "unknown unit 'qq'"),
    # a path into an input the layer does not have (StopIteration)
    "unknown_destination_input": (_NET.format("x -> dense -> h.J"), "has no input 'J'"),
    # a NUL in an import path (ValueError from the file system)
    "nul_in_import_path": ('import "a\x00b.snn"\n', "cannot import"),
    # lets inlined into one another past Python's recursion limit (RecursionError in lowering)
    "nested_lets": (DEEP["nested_lets"], "nest too deeply"),
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_found_by_fuzzing(name: str) -> None:
    text, words = FOUND[name]
    errors = [d for d in check_never_raises(text) if d.severity == "error"]
    assert any(words in d.message for d in errors), [d.message for d in errors]
