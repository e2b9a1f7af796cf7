"""The front end never crashes: each known fault (`reliability/...`) ends in a diagnostic at its line, or in
code that computes the right numbers on every path (fused numba, plain torch, JAX).

The specs are inline (CI has no reliability folder); each test's docstring names the file it reproduces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snnspec
from snnspec.check import NEURON_KEYWORDS
from snnspec.emit import BackendError

_NET = """
network Net {{
    steps = {steps}
    input x[4] encode direct
    layer h = C[3]
    x -> dense -> h
    output h.spike count, h.v trace
}}
"""


def errors(text: str) -> list[tuple[int, int, str, str]]:
    """(line, column, message, hint) of every error `snnspec.check` reports."""
    out = []
    for d in snnspec.check(text=text, name="spec.snn"):
        if d.severity == "error":
            assert d.span is not None and d.span.file == "spec.snn", d
            out.append((d.span.line, d.span.column, d.message, d.hint or ""))
    return out


def only_error(text: str) -> tuple[int, int, str, str]:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def neuron_spec(update: str, steps: int = 5) -> str:
    return f"neuron C {{\n    state v = 0\n    v <- {update}\n    spike when v > 1\n}}\n" + _NET.format(steps=steps)


# ---- parsing --------------------------------------------------------------------------------------------


def test_empty_neuron() -> None:
    """reliability/min_empty_neuron.snn: a neuron with no state and no spike computes nothing."""
    line, column, message, hint = only_error("neuron A {}\n")
    assert (line, column) == (1, 8)
    assert message == "neuron 'A' has no state and no spike: it computes nothing"
    assert "state v = 0" in hint


@pytest.mark.parametrize("before", ["", "# a comment\n", "\n\n"])
def test_keyword_glued_to_a_name_is_one_name(before: str) -> None:
    """reliability/min_keyword_glued_to_name.snn: `neuronA{}` is the name `neuronA` wherever it stands."""
    line, column, message, hint = only_error(before + "neuronA{}\n")
    assert (line, column, message) == (before.count("\n") + 1, 1, "unexpected 'neuronA'")
    assert "`neuron`" in hint


def test_keyword_glued_inside_a_neuron() -> None:
    """`spikewhen` is one name, not `spike when` (the same fault inside a block)."""
    text = "neuron A {\n    state v = 0\n    v <- v + I\n    spikewhen v > 1\n}\n"
    assert only_error(text)[:3] == (4, 15, "unexpected 'v'")


def test_byte_order_mark_is_dropped() -> None:
    """A UTF-8 BOM, as some editors write, starts the file: not an unexpected character."""
    text = "\ufeffneuron A {\n    state v = 0\n    v <- w\n}\n"
    assert errors(text) == [(3, 10, "unknown name 'w'", "")]  # columns count from the first real character


def test_overflowing_literal() -> None:
    """reliability/min_overflowing_literal.snn: `1e309` is past the largest float."""
    line, column, message, hint = only_error(neuron_spec("1e309 * v + I"))
    assert (line, column, message) == (3, 10, "the number 1e309 is too large")
    assert "1.8e308" in hint


def test_int_literal_of_5000_digits() -> None:
    """reliability/min_int_literal_5000_digits.snn: past Python's int-digit limit, a diagnostic."""
    text = 'from "std/neurons.snn" import Leaky\nnetwork Net {\n    steps = ' + "1" * 5000 + "\n}\n"
    line, column, message, hint = errors(text)[0]
    assert (line, column) == (3, 13)
    assert message == "`steps` 1111111111...111111 (5000 characters) is too large"
    assert hint == f"at most {2**31 - 1}"


def test_steps_too_large() -> None:
    """`steps = 99999999999999999999` is too large for an index; 2,000,000 is past the limit on a run."""
    assert errors(neuron_spec("0.5 * v + I", steps=99999999999999999999))[0][:3] == (
        8, 13, "`steps` 99999999999999999999 is too large")
    line, column, message, hint = only_error(neuron_spec("0.5 * v + I", steps=2_000_000))
    assert (line, column, message) == (7, 9, "steps must be from 1 to 1,000,000, got 2,000,000")  # at the network
    assert "several runs" in hint
    assert errors(neuron_spec("0.5 * v + I", steps=1_000_000)) == []


def test_a_flat_sum_of_500_terms_is_accepted() -> None:
    """A chain nests once however long: 500 terms build and compute the sum (on both backends)."""
    text = "neuron C {\n    state v = 0\n    v <- 0.9 * v + I" + " + 1" * 500 + "\n}\n"
    assert errors(text) == []
    for backend in ("torch", "jax"):
        assert "class C" in snnspec.generate(text=text, name="spec.snn", backend=backend)
    module = snnspec.compile(text=text, name="spec.snn")
    drive = torch.zeros(3, 1, 1, dtype=torch.float64)
    out, _, _ = module.C((1,)).double().run(drive)
    np.testing.assert_allclose(out[:, 0, 0].numpy(), [500.0, 950.0, 1355.0])  # v = 0.9 v + 500 from 0


def test_deep_nesting_is_still_a_diagnostic() -> None:
    """2000 nested parenthesised sums: a diagnostic at the line, never a RecursionError (2000 parentheses
    around one name nest nothing, and are accepted)."""
    text = "neuron C {\n    state v = 0\n    v <- " + "(v + " * 2000 + "v" + ")" * 2000 + "\n}\n"
    line, _, message, hint = only_error(text)
    assert (line, message) == (3, "the file nests deeper than 200 levels")
    assert "let" in hint
    assert errors(text.replace("(v + " * 2000, "(" * 2000)) == []


def test_a_chain_past_the_depth_limit_is_a_diagnostic() -> None:
    text = "neuron C {\n    state v = 0\n\n    v <- v" + " + 1" * 1500 + "\n}\n"
    line, _, message, _ = only_error(text)
    assert (line, message) == (4, "an expression is a chain of more than 1000 operations")


# ---- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["state", "param", "input", "let"])
@pytest.mark.parametrize("word", sorted(NEURON_KEYWORDS))
def test_a_neurons_keyword_cannot_name_its_locals(word: str, kind: str) -> None:
    """A neuron's own keyword (`spike`, `state`, `on`, ...) is rejected where it is declared, with a hint;
    its update (`spike <- ...`) parses, so the declaration is the one error."""
    decl = {"state": f"state {word} = 0\n    {word} <- {word} + I", "param": f"param {word} = 0.5",
            "input": f"input {word} = 0", "let": f"let {word} = v * 2"}[kind]
    text = f"neuron A {{\n    state v = 0\n    {decl}\n    v <- 0.5 * v + 1\n}}\n"
    line, column, message, hint = only_error(text)
    assert (line, column) == (3, len(kind) + 6)
    assert message == f"`{word}` is a keyword; rename the {kind}"
    assert f"`{word}_{kind}`" in hint


@pytest.mark.parametrize("word", ["neuron", "network", "rule", "clip", "pre", "modulator", "when", "learn"])
def test_other_keywords_name_a_state(word: str) -> None:
    """Keywords of other blocks (or ones that never start a statement) are plain names in a neuron."""
    text = f"neuron A {{\n    state {word} = 0\n    {word} <- 0.5 * {word} + I\n    spike when {word} > 1\n}}\n"
    assert errors(text) == []


def test_a_rule_state_may_be_updated_whatever_its_name() -> None:
    """`pre <- ...` in a rule is an update of the state `pre` (before, `unexpected '<-'`)."""
    text = ("rule R {\n    pre state pre = 0\n    pre <- pre * 0.5\n    on pre { pre += 1 }\n"
            "    on post { w += pre }\n}\n")
    assert errors(text) == []


def test_class_clash_has_a_location() -> None:
    """reliability/min_class_clash_without_location.snn: reported once, at the second declaration."""
    text = ("neuron C {\n    state v = 0\n    v <- 0.9 * v + I\n    spike when v > 1\n}\n"
            "neuron c {\n    state v = 0\n    v <- 0.5 * v + I\n    spike when v > 1\n}\n")
    for backend in ("torch", "jax"):
        with pytest.raises(BackendError) as err:
            snnspec.generate(text=text, name="spec.snn", backend=backend)
        (d,) = err.value.diagnostics
        assert d.message == "neuron 'c' and neuron 'C' would both generate the Python class 'C'"
        assert d.span is not None and (d.span.file, d.span.line, d.span.column) == ("spec.snn", 6, 8)


# ---- values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("default", "why"), [
    ("log(0)", "outside its domain"), ("1/0", "a division by zero"), ("exp(1000)", "overflows"),
    ("10 ** 400", "overflows"), ("sqrt(-1)", "outside its domain"),
])
def test_param_default_math_error(default: str, why: str) -> None:
    """reliability/min_param_default_math_error.snn: reported at check time, at the param's default."""
    text = (f"neuron C {{\n    param beta = {default}\n    state v = 0\n    v <- beta * v + I\n"
            "    spike when v > 1\n}\n")
    line, column, message, _ = only_error(text + _NET.format(steps=5))
    assert (line, column) == (2, 18)
    assert message.startswith("the default of param 'beta' has no finite value (") and why in message


def test_param_default_math_error_that_reads_dt() -> None:
    """A default that reads `dt` is evaluated with the network's dt, and reported at the param."""
    text = "neuron C {\n    param beta = log(dt - 1)\n    state v = 0\n    v <- beta * v + I\n}\n"
    assert errors(text) == []  # no dt yet: nothing to say
    net = (_NET.format(steps=5).replace("h.spike count, ", "").replace("-> h\n", "-> h\n    x -> dense -> g\n")
           .replace("    layer h = C[3]\n", "    layer h = C[3]\n    layer g = C[3]\n"))
    line, column, message, _ = only_error(text + net)
    assert (line, column) == (2, 18)  # once, for both layers
    assert message.startswith("the default of param 'beta' (with dt = 1) has no finite value")


def test_param_overflows_float32() -> None:
    """reliability/min_param_overflows_float32.snn: a range bound of 1e300 does not fit a float32 module."""
    text = ("neuron C {\n    param k = 0.5 in [0, 1e300]\n    state v = 0\n    v <- 0.5 * v + I\n"
            "    spike when v > k\n}\n" + _NET.format(steps=5))
    line, column, message, hint = only_error(text)
    assert (line, column, message) == (2, 26, "the range of param 'k' is 1e+300, too large for float32")
    assert "3.4e38" in hint


@pytest.mark.parametrize(("part", "column", "why"), [
    ("exp(1000)", 24, "has no finite value (it overflows"), ("1e38 * 10", 24, "is 1e+39, too large for float32"),
    ("log(0) * I", 24, "has no finite value (a function outside its domain"),
])
def test_a_numeric_part_of_an_update_must_be_finite(part: str, column: int, why: str) -> None:
    """The largest part written in numbers alone is evaluated where it is written."""
    line, col, message, _ = only_error(neuron_spec(f"0.5 * v + I + {part}"))
    assert (line, col) == (3, column) and message.startswith("a part of the equation of 'v' ") and why in message


def test_negative_refractory() -> None:
    text = "neuron C {\n    state v = 0\n    v <- 0.5 * v + I\n    spike when v > 1\n    refractory -3\n}\n"
    line, column, message, _ = only_error(text)
    assert (line, column, message) == (5, 16, "the refractory period must not be negative, got -3")


# ---- symbolic results ----------------------------------------------------------------------------------


def test_surrogate_grad_zoo() -> None:
    """reliability/min_surrogate_grad_zoo.snn: `grad = 1 / a` with a = 0 is infinite: a diagnostic at the
    surrogate (or at the spike's arguments, where they are given)."""
    surrogate = "surrogate s(x; a = 0) { grad = 1 / a }\n"
    neuron = "neuron C {\n    state v = 0\n    spike when v > 1 surrogate s\n}\n"
    line, column, message, _ = only_error(surrogate + neuron)
    assert (line, column) == (1, 11)
    assert message.startswith("the gradient of surrogate 's' is not finite with a = 0 (")
    text = surrogate.replace("a = 0", "a = 1") + neuron.replace("surrogate s", "surrogate s(a = 0)")
    assert only_error(text)[:2] == (4, 32)


def test_min_of_detached_constant() -> None:
    """reliability/min_min_of_detached_constant.snn: `min(I, detach(1.17))` builds and clips the input."""
    text = neuron_spec("0.9 * v + min(I, detach(1.17))")
    assert errors(text) == []
    module = snnspec.compile(text=text, name="spec.snn")
    drive = torch.tensor([0.5, 3.0, 2.0, -1.0], dtype=torch.float64).reshape(4, 1, 1)
    _, _, (v,) = module.C((1,)).double().run(drive, record=True)
    expected, value = [], 0.0
    for x in (0.5, 3.0, 2.0, -1.0):
        value = 0.9 * value + min(x, 1.17)
        expected.append(value)
    np.testing.assert_allclose(v[:, 0, 0].numpy(), expected, rtol=1e-12)
    assert snnspec.generate(text=text, name="spec.snn", backend="jax")


# heaviside_of_state.snn and the two min_* files, as one neuron without a spike: the outputs are smooth
# away from the steps, so a central finite difference of a numpy reference is the oracle for the gradient
STEPS = """
neuron H {
    param g = 0.7 learnable
    state x = 0
    state c = 0
    x <- 0.9 * x + g * I
    c <- 0.5 * c + heaviside(x - 1) + 2 * heaviside(I) + sign(x) * I + sign(c - 1.5) * x
}
"""


G = float(np.float32(0.7))  # the module holds its params in float32 before `.double()`


def reference(drive: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """The states of H over time, for its input `I` = drive[T, B, N], in numpy."""
    x = c = np.zeros(drive.shape[1:])
    xs, cs = [], []
    for now in drive:  # the updates are simultaneous: both read the states before the step
        x, c = 0.9 * x + g * now, 0.5 * c + (x > 1) + 2.0 * (now > 0) + np.sign(x) * now + np.sign(c - 1.5) * x
        xs.append(x)
        cs.append(c)
    return np.stack(xs), np.stack(cs)


def loss_reference(drive: np.ndarray, g: float) -> float:
    xs, cs = reference(drive, g)
    weights = np.linspace(0.5, 1.5, drive.shape[0]).reshape(-1, 1, 1)
    return float((weights * xs).sum() + (weights * cs**2).sum())


def finite_difference(drive: np.ndarray, g: float, eps: float = 1e-6) -> tuple[np.ndarray, float]:
    grad_I = np.zeros_like(drive)
    for idx in np.ndindex(drive.shape):
        up, down = drive.copy(), drive.copy()
        up[idx] += eps
        down[idx] -= eps
        grad_I[idx] = (loss_reference(up, g) - loss_reference(down, g)) / (2 * eps)
    grad_g = (loss_reference(drive, g + eps) - loss_reference(drive, g - eps)) / (2 * eps)
    return grad_I, grad_g


@pytest.fixture(scope="module")
def steps_input() -> np.ndarray:
    """Inputs whose steps (heaviside, sign arguments) stay well away from 0 under a 1e-6 nudge."""
    rng = np.random.default_rng(3)
    drive = rng.uniform(-1.5, 1.5, size=(12, 2, 3))
    drive[np.abs(drive) < 0.05] = 0.3
    xs, cs = reference(drive, G)
    assert np.abs(xs - 1).min() > 1e-3 and np.abs(xs).min() > 1e-3 and np.abs(cs - 1.5).min() > 1e-3
    return drive


def test_heaviside_and_sign_have_zero_gradient_on_every_path(steps_input: np.ndarray) -> None:
    """reliability/min_heaviside_in_update.snn, heaviside_of_state.snn, min_sign_in_update.snn: the fused
    kernel's adjoint, the plain torch path and JAX give the same outputs and gradients, and they are the
    gradient of the function (heaviside and sign count as steps, with zero derivative: docs/language-notes.md)."""
    lowered = snnspec.load_lowered(text=STEPS, name="steps.snn")
    assert lowered.neurons["H"].kernel is not None  # the fused path is the one the adjoint serves
    drive = steps_input
    xs_ref, cs_ref = reference(drive, G)
    grad_I_ref, grad_g_ref = finite_difference(drive, G)
    weights = np.linspace(0.5, 1.5, drive.shape[0]).reshape(-1, 1, 1)

    module = snnspec.compile(text=STEPS, name="steps.snn")
    for fused in (True, False):
        neuron = module.H((3,)).double()
        neuron.kernels = None if fused else "plain"
        xt = torch.tensor(drive, requires_grad=True)
        _, _, (x, c) = neuron.run(xt, record=True)
        w = torch.tensor(weights)
        loss = (w * x).sum() + (w * c**2).sum()
        grad_I, grad_g = torch.autograd.grad(loss, [xt, neuron.g])
        np.testing.assert_allclose(x.detach().numpy(), xs_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c.detach().numpy(), cs_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad_I.numpy(), grad_I_ref, rtol=1e-6, atol=1e-6, err_msg=f"fused={fused}")
        np.testing.assert_allclose(grad_g.item(), grad_g_ref, rtol=1e-6, err_msg=f"fused={fused}")

    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    H = snnspec.compile(text=STEPS, name="steps.snn", backend="jax").H

    def loss_j(I_j, g):
        _, _, (x, c) = H.run({"g": g}, I_j, record=True)
        return (weights * x).sum() + (weights * c**2).sum()

    jax.config.update("jax_enable_x64", True)
    try:
        grad_I, grad_g = jax.grad(loss_j, argnums=(0, 1))(jnp.asarray(drive), jnp.float64(G))
    finally:
        jax.config.update("jax_enable_x64", False)
    np.testing.assert_allclose(np.asarray(grad_I), grad_I_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(grad_g), grad_g_ref, rtol=1e-6)


@pytest.mark.parametrize("update", ["0.9 * v + heaviside(I)", "0.9 * v + sign(v) * I"])
def test_step_functions_in_a_network_build(update: str) -> None:
    """reliability/min_heaviside_in_update.snn, min_sign_in_update.snn: the network builds for both targets."""
    text = neuron_spec(update)
    assert errors(text) == []
    for backend in ("torch", "jax"):
        assert "class Net" in snnspec.generate(text=text, name="spec.snn", backend=backend)


def _names_of_length(n: int) -> str:
    s, p, x, h, o, a = ("s" * n, "p" * n, "x" * n, "h" * n, "o" * n, "a" * n)
    neuron = "N" + "n" * (n - 1)
    return f"""neuron {neuron} {{
    param {p} = 0.9 learnable per neuron
    state {s} = 0
    input {x} = 0
    let {a} = {p} * {s}
    d{s}/dt = (-{s} + {a} + {x}) / 5
    spike when {s} > 1
    on spike {{ {s} = 0 }}
}}
network Net {{
    steps = 5
    input {x}[2] encode direct
    layer {h} = {neuron}[3]
    layer {o} = {neuron}[3]
    {x} -> dense -> {h}.{x}
    {h} -> dense -> {o}.{x}
    {o} -> dense -> {h}.{x}
    output {o}.spike count, {h}.{s} trace
}}
"""


def test_names_at_the_length_limit_give_lines_within_120_characters(tmp_path):
    """Found by the pipeline fuzzer: 300- and 1000-character names gave generated lines of up to 1050
    characters (the layout cannot break a name). Names have at most 24 characters; at 24, every name
    joined with others (`x_h`, `h_s_now`, `"h.p": ...`) still breaks into lines of at most 120."""
    path = tmp_path / "long.snn"
    path.write_text(_names_of_length(24))
    for backend in ("torch", "jax"):
        source = snnspec.generate(path=path, backend=backend)
        compile(source, "generated.py", "exec")
        assert max(len(line) for line in source.splitlines()) <= 120, backend
    out = snnspec.compile(path=path).Net()(torch.ones(2, 2))
    assert out._fields[0].startswith("o")


def test_a_name_over_the_limit_is_a_diagnostic_at_it(tmp_path):
    path = tmp_path / "long.snn"
    path.write_text(_names_of_length(25))
    (d,) = snnspec.check(path)
    assert d.message.startswith("the name 'Nnnnnnnnnnnnnnnn...' is 25 characters long; names have at most 24")
    assert (d.span.line, d.span.column) == (1, 8) and "120 characters" in d.hint
