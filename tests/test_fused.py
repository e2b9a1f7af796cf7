"""The fused recurrence (numba kernels, and Triton kernels run by Triton's interpreter on CPU
tensors; derived backward) equals the plain autograd step loop.

Issues: fused path and plain path give the same outputs and gradients (float64, 1e-10 relative)
for every std neuron and every example spec, learnable per-neuron params included; gradcheck;
Triton (interpreted) == plain == numba; half and bfloat16 fused on CPU.
"""

from __future__ import annotations

import pytest
import torch

import snnspec
from tests.conftest import KERNEL_PATHS, SPECS

pytest.importorskip("numba")

FEATURES = """
neuron Feat {
    param tau = 5 learnable per neuron in [1, 50]
    param beta = exp(-dt / tau)
    param th = 1 learnable
    param gain = 0.5 learnable
    state v = 0
    state a = 0
    input I
    input J = 0
    let drive = gain * I + J * sin(t / 7)
    v <- beta * v + drive - a
    da/dt = -a / 20
    spike when v > th + 0.1 * a surrogate fast_sigmoid(slope = 5)
    on spike with gradient { v = 0; a += 0.2 * v }
    refractory 2
}
neuron Quad {
    param th = 1 learnable per neuron
    state v = 0
    input I
    dv/dt = (v * v / 4 - v + I) / 10
    spike when v >= th surrogate sigmoid(slope = 4)
    on spike { v -= th }
}
neuron Readout {
    param tau = 4 learnable
    state v = 0
    dv/dt = (-v + tanh(I)) / tau
}
"""

# std neuron -> (constructor overrides, input scale) giving a healthy spike rate
STD = {
    "Leaky": ({"beta": 0.8}, 1.0), "Synaptic": ({}, 0.5), "Alpha": ({}, 1.0), "Lapicque": ({}, 3.0),
    "LIF": ({"dt": 1e-3, "r": 20.0}, 1.0), "CubaLIF": ({"dt": 1e-3, "r": 20.0}, 3.0), "IF": ({"dt": 1e-3}, 1.0),
    "LI": ({"dt": 1e-3}, 1.0), "CubaLI": ({"dt": 1e-3}, 1.0), "ALIF": ({"dt": 1e-3, "r": 30.0}, 1.0),
    "Izhikevich": ({"dt": 5e-4}, 0.01), "AdEx": ({"dt": 5e-4}, 3e-9),
}


def run_both(make, shape=(5,), T=40, B=3, scale=1.0, seed=0, kernels="numba"):
    """Outputs and gradients (inputs, params) of the fused path `kernels` and the plain path, same weights."""
    results = []
    torch.manual_seed(seed)
    template = make().double()
    n_inputs = template.run.__code__.co_argcount - 3
    inputs = [torch.randn(T, B, *shape, dtype=torch.float64) * scale + 0.5 * scale for _ in range(n_inputs)]
    for path in (kernels, "plain"):
        neuron = make().double()
        neuron.load_state_dict(template.state_dict())
        neuron.kernels = path
        xs = [x.clone().requires_grad_() for x in inputs]
        out, final, record = neuron.run(*xs, record=True)
        weights = torch.linspace(0, 1, T, dtype=torch.float64).reshape(T, *([1] * (out.dim() - 1)))
        loss = (out * weights).sum() + sum((r**2).mean() for r in record) + sum(f.sum() for f in final)
        params = list(neuron.parameters())
        grads = torch.autograd.grad(loss, xs + params, allow_unused=True)
        results.append(([out, *final, *record], grads))
    return results


def assert_same(results, rtol=1e-10):
    (outs_f, grads_f), (outs_p, grads_p) = results
    for a, b in zip(outs_f, outs_p):
        torch.testing.assert_close(a, b, rtol=rtol, atol=1e-12)
    for a, b in zip(grads_f, grads_p):
        assert (a is None) == (b is None)
        if a is not None:
            scale = b.abs().max().clamp_min(1e-30)
            assert ((a - b).abs().max() / scale).item() < rtol


@pytest.fixture(scope="module")
def std():
    return snnspec.compile(SPECS / "std" / "neurons.snn")


@pytest.fixture(scope="module")
def features():
    return snnspec.compile(text=FEATURES, name="features.snn")


@pytest.mark.parametrize("kernels", KERNEL_PATHS)
@pytest.mark.parametrize("name", sorted(STD))
def test_std_neuron_fused_equals_plain(std, name, kernels):
    kwargs, scale = STD[name]
    results = run_both(lambda: getattr(std, name)((5,), **kwargs), scale=scale, kernels=kernels)
    spikes = results[1][0][0]
    assert spikes.abs().sum() > 0  # the comparison covers activity, not a silent layer
    assert_same(results)


@pytest.mark.parametrize("kernels", KERNEL_PATHS)
@pytest.mark.parametrize("name", ["Feat", "Quad", "Readout"])
def test_features_fused_equals_plain(features, name, kernels):
    """Learnable (per-neuron) params with ranges, a derived param, lets, two inputs, `t`, a
    refractory period, `on spike with gradient`, subtract reset, a quadratic ODE, no spike."""
    results = run_both(lambda: getattr(features, name)((4, 3)), shape=(4, 3), scale=1.5, kernels=kernels)
    assert_same(results)


@pytest.mark.parametrize("kernels", KERNEL_PATHS)
def test_learnable_param_outside_range_is_clamped_in_both(features, kernels):
    def make():
        neuron = features.Feat((5,))
        with torch.no_grad():
            neuron.tau.copy_(torch.tensor([0.5, 5.0, 80.0, 10.0, 20.0]))
        return neuron

    results = run_both(make, scale=1.5, kernels=kernels)
    assert_same(results)
    tau_grad = results[0][1][2]  # inputs I, J, then tau
    assert tau_grad[0] == 0 and tau_grad[2] == 0  # clamped: no gradient into the out-of-range values
    assert tau_grad[1] != 0


def test_fused_path_is_one_autograd_node(std):
    neuron = std.Leaky((6,), beta=0.9)
    x = torch.randn(30, 2, 6, requires_grad=True)
    out, _, _ = neuron.run(x)
    assert type(out.grad_fn).__name__ == "LeakyRunBackward"
    neuron.kernels = "plain"
    out, _, _ = neuron.run(x)
    assert type(out.grad_fn).__name__ != "LeakyRunBackward"


def test_module_flag_selects_plain_path(std):
    neuron = std.Leaky((6,))
    x = torch.randn(5, 2, 6, requires_grad=True)
    std.FUSED = False
    try:
        out, _, _ = neuron.run(x)
        assert type(out.grad_fn).__name__ != "LeakyRunBackward"
    finally:
        std.FUSED = True


@pytest.mark.parametrize("kernels", KERNEL_PATHS)
def test_gradcheck_small(features, kernels):
    neuron = features.Quad((3,)).double()
    neuron.kernels = kernels
    torch.manual_seed(3)
    base = torch.rand(8, 2, 3, dtype=torch.float64)

    def f(x):
        out, final, _ = neuron.run(x * 0.2)  # keep v far from threshold: the spike never switches
        return final.v

    assert torch.autograd.gradcheck(f, (base.requires_grad_(),))


@pytest.mark.parametrize("kernels", KERNEL_PATHS)
@pytest.mark.parametrize("example", ["mnist_mlp", "recurrent", "cobalif", "csnn", "digits_mlp"])
def test_example_networks_fused_equal_plain(example, kernels):
    path = SPECS / "examples" / f"{example}.snn"
    mod = snnspec.compile(path)
    cls = next(getattr(mod, n) for n in mod.__dict__ if n + "Output" in mod.__dict__)
    torch.manual_seed(0)
    net = cls().double()
    if net.steps > 60:
        net.steps = 60  # enough steps for spikes and resets; keeps the plain reference quick
    lowered = snnspec.load_lowered(path)
    (inp,) = [i for n in lowered.networks.values() for i in n.inputs][:1]
    shape = (20, 2, *inp.shape) if inp.encoding == "none" else (2, *inp.shape)
    x = torch.rand(*shape, dtype=torch.float64)
    results = []
    try:
        for path in (kernels, "plain"):
            mod.KERNELS = path
            torch.manual_seed(1)  # the same Bernoulli draws for rate encoding
            out = net(x)
            loss = sum(o.double().pow(2).sum() for o in out)
            grads = torch.autograd.grad(loss, list(net.parameters()))
            results.append((list(out), grads))
    finally:
        mod.KERNELS = "auto"
    assert_same(results)


def test_kernels_switch_chooses_and_refuses_by_name(std):
    """`auto` is numba on CPU tensors; a layer's `kernels` overrides the module's `KERNELS`; a path
    named explicitly that cannot run here fails with its reason rather than quietly stepping plainly."""
    neuron = std.Leaky((4,))
    x = torch.randn(6, 2, 4)
    assert neuron.kernels_for(x) == "numba"
    std.KERNELS = "plain"
    try:
        assert neuron.kernels_for(x) == "plain"
        neuron.kernels = "numba"
        assert neuron.kernels_for(x) == "numba"
    finally:
        std.KERNELS = "auto"
    neuron.kernels = "cuda kernels"
    with pytest.raises(ValueError, match="kernels must be 'auto', 'numba', 'triton' or 'plain'"):
        neuron.run(x)
    if "triton" in KERNEL_PATHS:
        neuron.kernels = "triton"
        patch = pytest.MonkeyPatch()
        patch.delenv("TRITON_INTERPRET")
        try:
            with pytest.raises(RuntimeError, match="Triton runs on CUDA tensors"):
                neuron.run(x)
        finally:
            patch.undo()


@pytest.mark.parametrize("kernels", KERNEL_PATHS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_modules_run_fused_on_cpu(std, kernels, dtype):
    """Half and bfloat16 layers run fused (computing in float32) and return their own dtype; their
    outputs and gradients are the float32 fused path's, rounded once to the dtype."""
    torch.manual_seed(0)
    x = torch.randn(30, 2, 8) * 0.8 + 0.4
    results = []
    for dt in (torch.float32, dtype):
        neuron = std.Synaptic((8,)).to(dt)
        neuron.kernels = kernels
        xt = x.to(dt).requires_grad_()
        out, final, _ = neuron.run(xt)
        assert type(out.grad_fn).__name__ == "SynapticRunBackward"
        assert out.dtype == final.mem.dtype == dt
        (g,) = torch.autograd.grad(out.float().sum() + final.mem.float().sum(), xt)
        assert g.dtype == dt
        results.append((out.float(), final.mem.float(), g.float()))
    (out32, mem32, g32), (out16, mem16, g16) = results
    assert out32.sum() > 0
    tol = 1e-2 if dtype == torch.float16 else 4e-2  # the input rounded to the dtype moves a few spikes' times
    assert (out16 != out32).float().mean() < tol
    torch.testing.assert_close(mem16, mem32, rtol=0.05, atol=0.05)


def test_train_header_says_which_kernels_run():
    """`snnspec train` / `simulate` print the kernels each layer runs; `KERNELS` changes the line."""
    from snnspec.train.kernels import kernel_line

    mod = snnspec.compile(SPECS / "examples" / "digits_mlp.snn")
    net = mod.DigitsMLP()
    assert kernel_line(net, "cpu") == "kernels: numba (cpu)"
    mod.KERNELS = "plain"
    try:
        assert kernel_line(net, "cpu") == "kernels: plain"
        net.out.kernels = "numba"
        assert kernel_line(net, "cpu") == "kernels: plain for hidden, numba (cpu) for out"
    finally:
        mod.KERNELS = "auto"


@pytest.mark.skipif("triton" not in KERNEL_PATHS, reason="Triton is not installed")
def test_triton_kernels_compile_from_a_module_run_from_memory(monkeypatch):
    """Where the cache folder is not writable the module runs from memory; Triton, which reads its
    kernels' source, still finds it (the lines are registered with linecache)."""
    monkeypatch.setenv("SNNSPEC_CACHE_DIR", "/proc/not-a-folder")
    mod = snnspec.compile(text=FEATURES, name="in_memory.snn")
    assert mod.__file__.startswith("<")
    results = run_both(lambda: mod.Quad((4,)), shape=(4,), scale=1.5, T=12, kernels="triton")
    assert_same(results)


def test_every_spec_function_has_a_triton_form_or_a_refusal():
    """The Triton table names every function the language has (a missing entry would crash `build`)."""
    from snnspec.emit.torch.triton import TRITON_FUNCTIONS
    from snnspec.expr import FUNCTIONS

    assert set(TRITON_FUNCTIONS) == set(FUNCTIONS)


def test_neuron_without_triton_form_steps_plainly_and_says_so():
    """`atan` has no Triton builtin: the neuron gets numba kernels only; "triton" by name is refused."""
    mod = snnspec.compile(text="""
neuron Arc {
    state v = 0
    input I
    v <- 0.5 * v + atan(I)
    spike when v > 1
    on spike { v = 0 }
}""", name="arc.snn")
    assert hasattr(mod, "_arc_forward")
    assert not hasattr(mod, "_arc_forward_triton")
    neuron = mod.Arc((3,))
    x = torch.randn(5, 2, 3)
    assert neuron.kernels_for(x) == "numba"
    neuron.kernels = "triton"
    why = "no Triton kernels" if "triton" in KERNEL_PATHS else "Triton is not installed"
    with pytest.raises(RuntimeError, match=why):
        neuron.run(x)
