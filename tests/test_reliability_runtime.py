"""What `snnspec check` accepts runs on every path with the same numbers.

Each spec runs on the fused CPU numba kernels (torch's default on CPU), the plain torch step loop
(`FUSED = False`, what runs on a GPU) and JAX, in float64: outputs and gradients (of the input,
the weights and learnable params) agree, and the outputs equal a numpy reference of the neuron.
"""

from __future__ import annotations

# ruff: noqa: E741 (`I`, the input current, as the specs name it)
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import snnspec
from snnspec.diagnostics import SpecError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("numba")

NETWORK = """
network Net {{
    steps = {steps}
    input x[4] encode direct
    layer h = C{override}[3]
    x -> dense -> h
    output {outputs}
}}
"""


pytestmark = pytest.mark.usefixtures("float64")  # conftest.py: float64 in torch and JAX


def spec(tmp_path, neuron: str, outputs: str = "h.spike count, h.v trace", steps: int = 5,
         override: str = "") -> str:
    path = tmp_path / "r.snn"
    path.write_text(neuron + NETWORK.format(steps=steps, outputs=outputs, override=override))
    return str(path)


def loss_of(out, xp):
    return sum((1 + i) * xp.sum(getattr(out, f) ** 2) for i, f in enumerate(out._fields))


def run_paths(path: str, x: np.ndarray, seed: int = 0) -> dict[str, tuple[list[np.ndarray], dict[str, np.ndarray]]]:
    """Outputs and gradients (of `x` and every param) on the fused, plain and JAX paths, same weights."""
    results = {}
    module = snnspec.compile(path=path)
    for fused in (True, False):
        module.FUSED = fused
        torch.manual_seed(seed)
        net = module.Net()
        xt = torch.tensor(x, requires_grad=True)
        out = net(xt)
        params = dict(net.named_parameters())
        grads = torch.autograd.grad(loss_of(out, torch), [xt, *params.values()], allow_unused=True)
        results["fused" if fused else "plain"] = (
            [getattr(out, f).detach().numpy() for f in out._fields],
            {k: (g.numpy() if g is not None else np.zeros(v.shape)) for k, v, g in
             zip(["x", *params], [xt, *params.values()], grads)})
    module.FUSED = True
    torch.manual_seed(seed)
    values = {k: jnp.asarray(v.detach().numpy()) for k, v in module.Net().named_parameters()}
    net_j = snnspec.compile(path=path, backend="jax").Net

    def loss_j(p, xj):
        out = net_j.apply(p, xj)
        return loss_of(out, jnp), out

    (_, out_j), (g_p, g_x) = jax.value_and_grad(loss_j, argnums=(0, 1), has_aux=True)(values, jnp.asarray(x))
    results["jax"] = ([np.asarray(getattr(out_j, f)) for f in out_j._fields],
                      {"x": np.asarray(g_x), **{k: np.asarray(g) for k, g in g_p.items()}})
    return results


def assert_same_on_every_path(results, rtol: float = 1e-10) -> None:
    outs, grads = results["fused"]
    for other in ("plain", "jax"):
        outs_o, grads_o = results[other]
        for a, b in zip(outs, outs_o):
            np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-12, err_msg=f"outputs, fused vs {other}")
        assert grads_o.keys() == grads.keys()
        for k in grads:
            np.testing.assert_allclose(grads_o[k], grads[k], rtol=rtol, atol=1e-12, err_msg=f"d/d{k}, fused vs {other}")


def current(path: str, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The layer's input current `x @ W.T + b`, from the weights the torch module draws."""
    torch.manual_seed(seed)
    dense = snnspec.compile(path=path).Net().x_h
    return x @ dense.weight.detach().numpy().T + dense.bias.detach().numpy()


def reference(I: np.ndarray, steps: int, update: Callable[[np.ndarray, float], np.ndarray], threshold: float = 1.0,
              reset: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts and the v trace of a one-state neuron, stepped in numpy: v <- update(v, t)."""
    v, count, trace = np.zeros_like(I), np.zeros_like(I), []
    for i in range(steps):
        v = update(v, float(i))
        spike = (v - threshold > 0).astype(float)
        count += spike
        if reset is not None:
            v = np.where(spike > 0, reset, v)
        trace.append(v)
    return count, np.stack(trace)


X = np.random.default_rng(3).random((2, 4)) * 2


def check_against_reference(results, expected) -> None:
    for path, (outs, _grads) in results.items():
        for got, want in zip(outs, expected):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=path)


def test_max_in_an_ode_runs_fused_with_its_gradient(tmp_path):
    """reliability/min_max_in_ode_fused_backward.snn: `max()` in an ODE made the fused backward
    kernel a numba TypingError (`float(bool)`)."""
    path = spec(tmp_path, """
neuron C {
    param k = 0.7
    state v = 0
    dv/dt = (-v + v ** 3 / max(k, v)) / 10 + I
    spike when v > 1
}""")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)
    check_against_reference(results, reference(I, 5, lambda v, t: v + ((-v + v**3 / np.maximum(0.7, v)) / 10 + I)))


def test_clip_of_t_is_scalar_math_on_the_plain_path(tmp_path):
    """reliability/min_clip_of_t.snn: the plain path called `torch.clamp(t, ...)` on a Python float."""
    path = spec(tmp_path, """
neuron C {
    state v = 0
    v <- 0.5 * v + I + clip(t, 0, v)
    spike when v > 1
}""")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)
    check_against_reference(results, reference(I, 5, lambda v, t: 0.5 * v + I + np.minimum(max(t, 0.0), v)))


def test_a_function_of_a_constant_let_is_scalar_math(tmp_path):
    """reliability/min_torch_fn_on_constant_let.snn: `let c = 4.52` then `sin(c)` printed
    `torch.sin(c)` on a Python float."""
    path = spec(tmp_path, """
neuron C {
    state v = 0
    let c = 4.52
    let d = c * t
    dv/dt = (-v + sin(c) + cos(d) + I) / 4
    spike when v > 1
}""")
    text = snnspec.generate(path=path, backend="torch")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)
    decay = math.exp(-1 / 4)
    # the linear ODE integrated exactly over a step, its drive held at the step's start
    check_against_reference(results, reference(
        I, 5, lambda v, t: (I + math.sin(4.52) + math.cos(4.52 * t)) * (1 - decay) + v * decay))
    # a let of numbers is plain math; one of `t` is a tensor (t is one in torch's step, as in JAX's scan)
    assert "math.sin(c)" in text and "torch.sin" not in text and "torch.cos(d)" in text


def test_spiked_in_a_neuron_that_never_spikes_is_a_diagnostic(tmp_path):
    """reliability/min_spiked_in_nonspiking_neuron.snn: generated code named an undefined `spike`."""
    path = spec(tmp_path, """
neuron C {
    state v = 0
    v <- 0.9 * v + I - spiked
}""", outputs="h.v trace")
    with pytest.raises(SpecError) as err:
        snnspec.compile(path=path)
    text = str(err.value)
    assert "reads 'spiked' but never spikes" in text
    assert "r.snn:4:24" in text and "spike when" in text


def test_a_param_default_of_zero_that_divides_is_a_diagnostic(tmp_path):
    """reliability/min_tau_zero_jax_divzero.snn: `tau = 0` ran on torch (exp(-dt/0) = 0) and raised
    ZeroDivisionError in the JAX step."""
    path = spec(tmp_path, """
neuron C {
    param tau = 0
    state v = 0
    dv/dt = (-v + I) / tau
    spike when v > 1
    on spike { v = 0 }
}""")
    with pytest.raises(SpecError) as err:
        snnspec.compile(path=path)
    text = str(err.value)
    assert "param 'tau' is 0, and the neuron divides by it" in text
    assert "r.snn:5:24" in text and "nonzero default" in text


def test_a_zero_tau_by_override_gives_the_same_numbers_everywhere(tmp_path):
    """reliability/min_tau_zero_jax_divzero.snn, the zero arriving by a layer override: every path
    takes exp(-dt/0) = 0, so v follows I (JAX raised ZeroDivisionError)."""
    path = spec(tmp_path, """
neuron C {
    param tau = 2
    state v = 0
    dv/dt = (-v + I) / tau
    spike when v > 1
    on spike { v = 0 }
}""", override="(tau = 0)")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)
    check_against_reference(results, reference(I, 5, lambda v, t: I + 0 * v, reset=0.0))


def test_long_state_names_compile_on_the_fused_path(tmp_path):
    """reliability/long_state_name.py: numba's LLVM 'redefinition of argument' for a 3,000-character
    state name. Such a name is now a diagnostic (names have at most 24 characters); names at the limit
    compile on the fused path, kernel arguments short and unique, every line within 120."""
    v = "v" * 23
    neuron = f"""
neuron C {{
    state {v} = 0
    state {v}2 = 0
    {v} <- 0.9 * {v} + I
    {v}2 <- 0.5 * {v}2 + {v}
    spike when {v}2 > 1
}}"""
    path = spec(tmp_path, neuron, outputs="h.spike count")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)
    a, b, count = np.zeros_like(I), np.zeros_like(I), np.zeros_like(I)
    for _ in range(5):
        a, b = 0.9 * a + I, 0.5 * b + a
        count += b > 1
    np.testing.assert_array_equal(results["fused"][0][0], count)
    assert max(len(line) for line in snnspec.generate(path=path).splitlines()) <= 120
    (d,) = snnspec.check(spec(tmp_path, neuron.replace(v, "v" * 3000), outputs="h.spike count"))
    assert "3000 characters long; names have at most 24" in d.message and d.span.line == 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_and_bfloat16_modules_run_fused_in_float32(tmp_path, dtype):
    """Half and bfloat16 modules raised on the fused path, then stepped plainly; now they run the fused
    kernels, which compute in float32: the numbers of a float32 module holding the same (rounded)
    params and input, returned in the module's dtype."""
    path = spec(tmp_path, """
neuron C {
    param beta = 0.8 learnable
    state v = 0
    v <- beta * v + I
    spike when v > 1
    on spike { v -= 1 }
}""")
    module = snnspec.compile(path=path)
    results = []
    for run_dtype, kernels in ((dtype, "numba"), (torch.float32, "plain")):
        module.KERNELS = kernels
        torch.manual_seed(0)
        net = module.Net().to(dtype).to(run_dtype)  # the float32 run starts from the rounded params
        out = net(torch.tensor(X, dtype=dtype).to(run_dtype))
        assert out.h_v.dtype == run_dtype
        loss_of(out, torch).float().backward()
        results.append([out.h_spike, out.h_v, *(p.grad for p in net.parameters())])
    module.KERNELS = "auto"
    (spikes, v, *grads), (spikes32, v32, *grads32) = results
    assert spikes.float().sum() > 0
    assert torch.equal(spikes.float(), spikes32)
    ulp = torch.finfo(dtype).eps  # the two round float32 arithmetic to the dtype: one unit apart at most
    torch.testing.assert_close(v.float(), v32.to(dtype).float(), rtol=2 * ulp, atol=ulp)
    for a, b in zip(grads, grads32):
        torch.testing.assert_close(a.float(), b.to(dtype).float(), rtol=2e-2, atol=1e-3)


# every function of the printer's table, in an ODE and in the spike condition, on generic values
FUNCTIONS = {
    "exp": ("exp(0.3 * v)", lambda v: np.exp(0.3 * v)),
    "log": ("log(1.5 + tanh(v))", lambda v: np.log(1.5 + np.tanh(v))),
    "sqrt": ("sqrt(1.5 + tanh(v))", lambda v: np.sqrt(1.5 + np.tanh(v))),
    "abs": ("abs(v - 0.4)", lambda v: np.abs(v - 0.4)),
    "tanh": ("tanh(v)", np.tanh),
    "sigmoid": ("2 ** sigmoid(v)", lambda v: 2 ** (1 / (1 + np.exp(-v)))),
    "atan": ("atan(v)", np.arctan),
    "erf": ("erf(v)", np.vectorize(math.erf)),
    "sin": ("sin(v)", np.sin),
    "cos": ("cos(v)", np.cos),
    "min": ("min(k, v)", lambda v: np.minimum(0.7, v)),
    "max": ("max(v, k)", lambda v: np.maximum(v, 0.7)),
    "clip": ("clip(v, k, 1.2)", lambda v: np.clip(v, 0.7, 1.2)),
    "clip_of_constant": ("clip(0.9, k, v)", lambda v: np.minimum(np.maximum(0.9, 0.7), v)),
    "detach": ("detach(v) * v", lambda v: v * v),
}


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_every_function_gives_the_same_numbers_on_every_path(tmp_path, fn):
    """Each function in an ODE prints for numba (forward and backward), torch and JAX alike."""
    text, numpy_fn = FUNCTIONS[fn]
    path = spec(tmp_path, f"""
neuron C {{
    param k = 0.7 learnable
    state v = 0
    dv/dt = (-v + 0.5 * {text}) / 5 + I
    spike when v > 1
}}""")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)
    check_against_reference(results, reference(I, 5, lambda v, t: v + (-v + 0.5 * numpy_fn(v)) / 5 + I))


# at a tie, the gradient follows the first argument that varies (docs/language-notes.md)
TIES = {"max(k, 0)": 1.0, "max(0, k)": 1.0, "min(k, 0)": 1.0, "min(0, k)": 1.0, "clip(k, 0, 1)": 1.0,
        "clip(0, k, 1)": 1.0, "clip(0, -1, k)": 1.0, "abs(k)": 0.0}


@pytest.mark.parametrize("expr", TIES)
def test_min_max_clip_abs_at_a_tie_have_one_gradient_everywhere(tmp_path, expr):
    """At k = 0 every path gives d expr / dk the same value: torch.clamp's, not torch.maximum's
    split 0.5 (the plain path had it for two tensors) nor jnp.abs's 1 at 0."""
    path = spec(tmp_path, f"""
neuron C {{
    param k = 0 learnable
    state v = 0
    v <- 0.5 * v + I + {expr}
}}""", outputs="h.v trace", steps=3)
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    # d(sum of v over 3 steps, 2 x 3 elements)/dk of v_t = sum_{j<t} 0.5^j * d expr/dk; loss = 2 sum(v^2)
    _outs, grads = results["fused"]
    trace = results["fused"][0][0]
    dv = np.array([1.0, 1.5, 1.75])[:, None, None] * TIES[expr]
    np.testing.assert_allclose(grads["h.k"], np.sum(2 * trace * dv), rtol=1e-12, atol=1e-12)


def test_math_of_t_is_ieee_on_every_path(tmp_path):
    """Found by the pipeline fuzzer: `0.5 / t` at t = 0 raised ZeroDivisionError on the plain path (and in
    numba), where JAX gives inf. `t` is a tensor in torch's step and numba computes as numpy does."""
    path = spec(tmp_path, """
neuron C {
    state v = 0
    v <- 0.5 * v + I + 1 / (1 + 1 / t) + exp(log(t) - 5)
    spike when v > 1
}""")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)

    def update(v, t):
        with np.errstate(divide="ignore"):
            t = np.float64(t)
            return 0.5 * v + I + 1 / (1 + 1 / t) + np.exp(np.log(t) - 5)

    check_against_reference(results, reference(I, 5, update))


def test_abs_of_an_expression_of_a_learnable_param(tmp_path):
    """Found by the pipeline fuzzer: `abs(sigmoid(p) ** 2)` with `p` learnable made the fused adjoint
    differentiate sympy's complex `Abs` (`re(...)`, not expressible); `abs` is real, d/dx = sign(x)."""
    path = spec(tmp_path, """
neuron C {
    param p = 3 learnable per neuron
    state v = 0
    v <- 0.5 * v + I + 2 / (1 + abs(sigmoid(p) ** 2 - 0.5))
    spike when v > 1
}""")
    results = run_paths(path, X)
    assert_same_on_every_path(results)
    I = current(path, X)
    s = 1 / (1 + math.exp(-3))
    check_against_reference(results, reference(I, 5, lambda v, t: 0.5 * v + I + 2 / (1 + abs(s**2 - 0.5))))
    # the gradient reaches p (through sign(s^2 - 0.5) * 2 s * s(1 - s)), the same on every path
    (key,) = [k for k in results["fused"][1] if k.startswith("h.")]
    assert np.all(results["fused"][1][key] != 0)
