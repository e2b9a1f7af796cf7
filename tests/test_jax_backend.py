"""The JAX backend against the PyTorch one (DESIGN.md "Testing: cross-backend"), and its API.

Every example spec, and a set of feature specs that between them use every op, encoding,
readout and neuron feature the PyTorch backend prints, gives the same outputs and the same
gradients of a loss in JAX and in PyTorch, with the same params (copied in one line from the
torch module's `named_parameters()`) and the same inputs. Random draws (rate coding, dropout
masks) are made equal by replacing `torch.bernoulli` and `jax.random.bernoulli` with one
deterministic draw per shape for the duration of a test.

Tolerances: float32 outputs 1e-5 and gradients 1e-4, relative to the largest magnitude of each
output (at least 1) and to the largest gradient of the loss; float64 1e-9 for both (1e-7 for the
gradients of the E/I loop). Three specs have their gradients compared in float64 only (their
float32 outputs are still compared). Two are ill-conditioned in float32 (a 500-step
conductance-based E/I loop; Izhikevich and AdEx in volts): there torch's own float32 gradients
differ from its float64 ones by up to 80%. In the ResNet, 600k neuron-steps after five conv +
batchnorm stages, a membrane potential that lands within float32 rounding of its threshold
(summation order differs between the backends) flips one spike about every other run, which
moves the gradients by a few percent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
import jax.numpy as jnp  # noqa: E402

import snnspec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"

# -- feature specs: every op, encoding, readout and neuron feature the torch backend prints -------

FEATURES = {
    # direct input (static paths), dense without bias, one_to_one, scale, dropout, frozen; a neuron
    # with two inputs (one with a default), learnable and per-neuron params with ranges, a derived
    # param of a learnable one, `on spike with gradient`; derived-param Lapicque and Alpha; every
    # readout
    "features_mlp": """
from "std/neurons.snn" import Leaky, Lapicque, Alpha

neuron LearnLIF {
    param tau = 5 learnable in [1, 20]
    param beta = exp(-dt / tau)
    param threshold = 1 learnable per neuron in [0.5, 2]
    param drive = 0.1
    state v = 0
    input I
    input I_bias = 0.05
    v <- beta * v + I + I_bias + drive
    spike when v > threshold surrogate fast_sigmoid(slope = 10)
    on spike with gradient { v -= threshold }
}

network N {
    steps = 12
    input x[20] encode direct
    layer h = LearnLIF[16]
    layer o = Leaky(beta = 0.8)[6]
    layer lp = Lapicque(beta = 0.85)[5]
    layer al = Alpha(alpha = 0.9, beta = 0.7)[4]
    x -> dense(bias = false) -> h
    x -> one_to_one -> dense(16) -> h.I_bias
    h -> dense -> scale(0.5) -> dropout(0.3) -> o
    h.v -> dense -> lp frozen
    lp -> dense -> al
    o -> dense -> al
    output o.spike count, o_rate = o.spike rate, o_last = o.mem last, o_max = o.mem max, h.v trace
    output named = h.spike count, lp.mem trace, al.mem trace
}
""",
    # conv1d with stride and padding, batchnorm over [C, L] and over [C], sum/avg/max pooling in 1d,
    # flatten, latency coding
    "features_conv1d": """
from "std/neurons.snn" import Leaky
network N {
    steps = 10
    input x[2, 24] encode latency(tau = 5, threshold = 0.1)
    layer c = Leaky(beta = 0.7)
    layer c2 = Leaky
    layer d = Leaky[8]
    x -> conv1d(4, kernel = 3, padding = 1) -> batchnorm -> sumpool(2) -> c
    c -> conv1d(4, kernel = 3, stride = 2) -> avgpool(2) -> c2
    c2 -> flatten -> dense(8) -> batchnorm -> d
    c -> maxpool(3) -> flatten -> dense -> d
    output d.spike count, c.mem trace
}
""",
    # delta and none coding, two inputs; a step-major group of two layers closed by a recurrent
    # path through a delay; dropout inside the group (one mask per sequence); a layer-major path
    # from a state; a self-recurrent lateral path; refractory with `on spike`, `t` in a let, a
    # user surrogate given by its grad, an exact ODE
    "features_recurrent": """
from "std/neurons.snn" import Synaptic, Leaky

surrogate boxcar(x; width = 0.5) { grad = heaviside(width - abs(x)) / (2 * width) }

neuron RefracT {
    param tau = 4
    param v_reset = -0.2
    state v = 0.1
    let drive = I * (1 + 0.1 * sin(t))
    dv/dt = (-v + drive) / tau
    spike when v > 0.5 surrogate boxcar(width = 0.5)
    on spike { v = v_reset }
    refractory 2
}

network N {
    steps = 15
    input x[10] encode delta(threshold = 0.1)
    input y[6] encode none
    layer a = Synaptic[12]
    layer b = Leaky[8]
    layer r = RefracT[5]
    x -> dense -> delay(2) -> a
    y -> dense -> a
    a -> dense -> dropout(0.2) -> b
    b -> dense -> delay(3) -> a
    a.mem -> dense -> r
    r -> lateral(w = 0.3) -> r
    b.mem -> dense -> delay(1) -> r
    output r.spike count, b.mem trace, a.syn max, named = r.v last
}
""",
    # a group of two layers whose in-group paths read states, forwards and backwards (a recurrent
    # state path sees zero at the first step), and `t` inside a step-major group
    "features_group_states": """
from "std/neurons.snn" import Leaky

neuron TLeaky {
    param beta = 0.9
    state mem = 0
    mem <- beta * mem + I * (1 + 0.05 * t)
    spike when mem > 1
    on spike { mem -= 1 }
}

network N {
    steps = 10
    input x[5] encode direct
    layer a = TLeaky[4]
    layer b = Leaky[3]
    x -> dense -> a
    a.mem -> dense -> b
    b.mem -> dense -> a
    output b.spike count, a.mem trace, b.mem trace
}
""",
    # physical units, rate coding, std NIR and biophysical neurons (exact, exponential Euler and
    # Euler updates; adaptive threshold; non-spiking readout)
    "features_units": """
from "std/neurons.snn" import CubaLIF, ALIF, Izhikevich, AdEx, IF, CubaLI
network N {
    dt = 0.5 ms
    steps = 40
    input x[8] encode rate
    layer c = CubaLIF(tau_syn = 5 ms, tau_mem = 10 ms)[6]
    layer al = ALIF[6]
    layer iz = Izhikevich[5]
    layer ad = AdEx[5]
    layer i = IF[4]
    layer ro = CubaLI[3]
    x -> dense -> scale(5) -> c
    x -> dense -> scale(3) -> al
    x -> dense -> scale(10 mV) -> iz
    x -> dense -> scale(500 pA) -> ad
    c -> dense -> i
    al -> dense -> ro
    output ro.v trace, iz.spike count, ad.v max, i.spike count, c.spike count, al.theta last
}
""",
    # a layer with a large product per step (computed inside its scan when `_per_step` says so):
    # two inputs, two source sequences, dropout, scale
    "features_per_step": """
from "std/neurons.snn" import Leaky

neuron Two {
    input I
    input J = 0.1
    state v = 0
    v <- 0.8 * v + I + 0.5 * J - detach(spiked)
    spike when v > 1
}

network N {
    steps = 8
    input x[256] encode rate
    layer g = Leaky[256]
    layer h = Two[128]
    layer o = Leaky[4]
    x -> one_to_one -> g
    x -> dense -> dropout(0.25) -> h
    g -> dense -> scale(0.5) -> h.J
    h -> dense -> o
    output o.spike count, h.v trace
}
""",
    # conv2d, pooling in 2d, a direct input through conv and pooling (computed once, repeated)
    "features_conv2d": """
from "std/neurons.snn" import Leaky
network N {
    steps = 6
    input x[2, 12, 12] encode direct
    layer c = Leaky(beta = 0.8)
    layer c2 = Leaky(beta = 0.8)
    layer o = Leaky[5]
    x -> conv2d(4, kernel = 3, stride = 2, padding = 1) -> maxpool(2) -> c
    x -> conv2d(3, kernel = 2, bias = false) -> sumpool(2) -> c2
    c2 -> avgpool(5) -> flatten -> dense -> o
    c -> maxpool(3) -> flatten -> dense -> o
    output o.spike count, c.spike rate, c2.mem last
}
""",
}


@dataclass
class Case:
    name: str
    path: Path | None = None
    text: str | None = None
    scale: float = 1.0  # inputs: uniform on [0, scale)
    boost: dict[str, float] = field(default_factory=dict)  # params multiplied, so that spikes reach the outputs
    f32_grads: bool = True
    f64_grad_tol: float = 1e-9
    batch: int = 3
    steps: int = 12  # for sequence inputs without `steps`

    def source(self) -> dict:
        return {"text": self.text, "name": f"{self.name}.snn"} if self.text else {"path": self.path}


CASES = [
    Case("mnist_mlp", EXAMPLES / "mnist_mlp.snn"),
    Case("digits_mlp", EXAMPLES / "digits_mlp.snn", scale=2.0),
    Case("recurrent", EXAMPLES / "recurrent.snn", steps=30),
    Case("csnn", EXAMPLES / "csnn.snn", scale=4.0, boost={"c2_out.weight": 20.0, "c1_c2.weight": 3.0}),
    Case("cobalif", EXAMPLES / "cobalif.snn", f32_grads=False, f64_grad_tol=1e-7, batch=2),
    Case("resnet_snn", EXAMPLES / "resnet_snn.snn", scale=2.0, batch=2, boost={"b2_out.weight": 10.0},
         f32_grads=False),
    Case("features_mlp", text=FEATURES["features_mlp"], scale=3.0),
    Case("features_conv1d", text=FEATURES["features_conv1d"], scale=1.0),
    Case("features_recurrent", text=FEATURES["features_recurrent"], scale=2.0, boost={"a_b_dense.weight": 3.0}),
    Case("features_group_states", text=FEATURES["features_group_states"], scale=3.0),
    Case("features_units", text=FEATURES["features_units"], f32_grads=False),
    Case("features_per_step", text=FEATURES["features_per_step"], scale=1.0, boost={"h_o.weight": 4.0}),
    Case("features_conv2d", text=FEATURES["features_conv2d"], scale=3.0, boost={"c_o.weight": 5.0, "c2_o.weight": 5.0}),
]
IDS = [c.name for c in CASES]
CASE = {c.name: c for c in CASES}

_MODULES: dict[tuple[str, str], object] = {}


def compiled(case: Case, backend: str):
    if (case.name, backend) not in _MODULES:
        _MODULES[case.name, backend] = snnspec.compile(**case.source(), backend=backend)
    return _MODULES[case.name, backend]


def network(case: Case):
    lowered = snnspec.load_lowered(**case.source())
    (net,) = lowered.networks.values()
    return net


def cls_name(net) -> str:
    from snnspec.names import class_name

    return class_name(net.name)


# -- random draws made equal -------------------------------------------------------------------------

class SameDraws:
    """One fixed uniform draw per shape, used by both backends' Bernoulli sampling."""

    def __init__(self) -> None:
        self.uniform: dict[tuple[int, ...], np.ndarray] = {}

    def u(self, shape) -> np.ndarray:
        shape = tuple(int(n) for n in shape)
        if shape not in self.uniform:
            seed = int(np.prod(shape)) * 7919 + len(shape)
            self.uniform[shape] = np.random.default_rng(seed).random(shape)
        return self.uniform[shape]

    def torch_bernoulli(self, p, *args, **kwargs):
        return (torch.as_tensor(self.u(p.shape), dtype=p.dtype) < p).to(p.dtype)

    def jax_bernoulli(self, key, p=0.5, shape=None):
        p = jnp.asarray(p)
        shape = p.shape if shape is None else tuple(shape)
        return jnp.asarray(self.u(shape), dtype=p.dtype) < p


@pytest.fixture
def same_draws(monkeypatch):
    draws = SameDraws()
    monkeypatch.setattr(torch, "bernoulli", draws.torch_bernoulli)
    monkeypatch.setattr(jax.random, "bernoulli", draws.jax_bernoulli)
    return draws


# -- the comparison ------------------------------------------------------------------------------

def build(case: Case, seed: int = 0):
    """The torch module (fresh params, boosted), its params as JAX arrays, and inputs for both."""
    net_ir = network(case)
    torch.manual_seed(seed)
    net = getattr(compiled(case, "torch"), cls_name(net_ir))()
    with torch.no_grad():
        for name, value in net.named_parameters():
            value.mul_(case.boost.get(name, 1.0))
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in net.named_parameters()}
    gen = torch.Generator().manual_seed(seed + 1)
    dtype = torch.get_default_dtype()
    inputs = []
    for inp in net_ir.inputs:
        lead = (net_ir.steps or case.steps, case.batch) if inp.encoding in ("none", "delta") else (case.batch,)
        inputs.append(torch.rand((*lead, *inp.shape), generator=gen, dtype=dtype) * case.scale)
    return net, params, inputs


def loss_of(outputs, xp):
    return sum((1 + i) * xp.mean(getattr(outputs, f) ** 2) for i, f in enumerate(outputs._fields))


def close(a, b, tol: float, scale: float = 1.0) -> float:
    """The largest difference relative to the largest magnitude of `a` (at least `scale`)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(scale, float(np.abs(a).max(initial=0.0)))
    err = float(np.abs(a - b).max(initial=0.0)) / scale
    assert err <= tol, f"max relative difference {err:.3g} > {tol:g}"
    return err


def compare(case: Case, out_tol: float, grad_tol: float | None, per_step_macs: int | None = None) -> None:
    net_ir = network(case)
    module = compiled(case, "jax")
    J = getattr(module, cls_name(net_ir))
    if per_step_macs is not None:
        assert hasattr(module, "PER_STEP_MACS")
        module.PER_STEP_MACS, saved = per_step_macs, module.PER_STEP_MACS
    net, params, inputs = build(case)
    key = jax.random.PRNGKey(0)
    out_t = net(*inputs)
    loss_t = loss_of(out_t, torch)
    loss_t.backward()
    xs = [jnp.asarray(x.numpy()) for x in inputs]

    def loss_j(p):
        out = J.apply(p, *xs, key=key)
        return loss_of(out, jnp), out

    try:
        (value, out_j), grads = jax.jit(jax.value_and_grad(loss_j, has_aux=True))(params)
    finally:
        if per_step_macs is not None:
            module.PER_STEP_MACS = saved
    assert out_j._fields == out_t._fields
    spikes = [f for f in out_t._fields if f.endswith("spike")]
    assert not spikes or any(float(getattr(out_t, f).detach().abs().sum()) > 0 for f in spikes)
    for f in out_t._fields:
        close(getattr(out_t, f).detach().numpy(), getattr(out_j, f), out_tol)
    if grad_tol is None:
        return
    expected = {name: value.grad.numpy() if value.grad is not None else np.zeros(value.shape)
                for name, value in net.named_parameters()}
    # relative to the largest gradient of the loss: a bias just before a batchnorm has a true
    # gradient of zero, and what each backend computes for it is rounding noise of the sum of the
    # gradients that cancel there
    largest = max([1.0] + [float(np.abs(g).max(initial=0.0)) for g in expected.values()])
    for name, value_t in expected.items():
        try:
            close(value_t, grads[name], grad_tol, largest)
        except AssertionError as err:
            raise AssertionError(f"gradient of {name}: {err}") from None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_outputs_and_gradients_float32(case, same_draws):
    compare(case, 1e-5, 1e-4 if case.f32_grads else None)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_outputs_and_gradients_float64(case, same_draws, float64):
    compare(case, 1e-9, case.f64_grad_tol)


@pytest.mark.parametrize("name", ["mnist_mlp", "csnn", "features_per_step"])
def test_currents_computed_inside_the_scan_give_the_same_numbers(name, same_draws, float64):
    """Layers with a large product per step compute their currents inside their scan on CPU
    (`_per_step`); forced on at any size, they still give torch's outputs and gradients."""
    compare(CASE[name], 1e-9, CASE[name].f64_grad_tol, per_step_macs=0)


# -- the params ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_params_have_torch_names_shapes_and_init(case):
    net_ir = network(case)
    torch.manual_seed(0)
    net = getattr(compiled(case, "torch"), cls_name(net_ir))()
    J = getattr(compiled(case, "jax"), cls_name(net_ir))
    params = J.init(jax.random.PRNGKey(0))
    named = dict(net.named_parameters())
    assert list(params) == list(named)  # same names, same order
    for name, value in named.items():
        assert params[name].shape == tuple(value.shape), name
        assert params[name].dtype == jnp.float32
        j = np.asarray(params[name])
        t = value.detach().numpy()
        attr, _, kind = name.rpartition(".")
        weight = named.get(f"{attr}.weight")
        if kind in ("weight", "bias") and weight is not None and weight.dim() >= 2:
            # dense and conv: uniform on +-1/sqrt(fan_in), as torch draws them
            bound = 1 / np.sqrt(np.prod(weight.shape[1:]))
            assert np.abs(t).max() <= bound + 1e-7 and np.abs(j).max() <= bound + 1e-7, name
            if j.size >= 200:
                assert np.abs(j).max() > 0.95 * bound and abs(j.mean()) < 0.1 * bound, name
        else:  # batchnorm weight 1 and bias 0, one_to_one weights 1, learnable neuron params at their values
            np.testing.assert_allclose(j, t, rtol=1e-6, err_msg=name)


def changing_buffers(net) -> dict:
    """torch's `named_buffers()` that change as the module runs (batchnorm statistics, plastic weights):
    all but the fixed params of neuron and rule modules, which the JAX code holds as constants."""
    return {k: v for k, v in net.named_buffers()
            if not hasattr(net.get_submodule(k.rpartition(".")[0]), "init_state")}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_buffers_have_torch_names_shapes_and_init(case):
    """`init_buffers()` holds torch's buffers by their `named_buffers()` names (less the neurons' and
    rules' fixed params, constants of the generated code), with torch's initial values."""
    net_ir = network(case)
    net = getattr(compiled(case, "torch"), cls_name(net_ir))()
    J = getattr(compiled(case, "jax"), cls_name(net_ir))
    buffers = J.init_buffers()
    expected = changing_buffers(net)
    assert list(buffers) == list(expected)
    for name, value in expected.items():
        assert buffers[name].shape == tuple(value.shape), name
        np.testing.assert_array_equal(np.asarray(buffers[name]), value.numpy(), err_msg=name)


def test_frozen_weights_are_params_without_gradient():
    case = CASE["features_mlp"]
    J = compiled(case, "jax").N
    params = J.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 20)) * 3
    grads = jax.jit(jax.grad(lambda p: loss_of(J.apply(p, x), jnp)))(params)
    assert "h_lp.weight" in params and not np.any(np.asarray(grads["h_lp.weight"]))
    assert np.any(np.asarray(grads["h.tau"])) and grads["h.threshold"].shape == (16,)


# -- JAX transformations -------------------------------------------------------------------------

def test_jit_grad_vmap_over_params():
    J = snnspec.compile(EXAMPLES / "digits_mlp.snn", backend="jax").DigitsMLP
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    batch_of_params = jax.vmap(J.init)(keys)
    assert batch_of_params["x_hidden.weight"].shape == (3, 128, 64)
    x = jax.random.uniform(jax.random.PRNGKey(1), (5, 64)) * 2
    per_model = jax.jit(jax.vmap(lambda p: J.apply(p, x)))(batch_of_params)
    apply = jax.jit(J.apply)
    for i, key in enumerate(keys):
        one = apply(J.init(key), x)
        np.testing.assert_allclose(per_model.out_mem[i], one.out_mem, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(per_model.out_spike[i], one.out_spike)
    eager = J.apply(J.init(keys[0]), x)
    jitted = apply(J.init(keys[0]), x)
    np.testing.assert_allclose(eager.out_mem, jitted.out_mem, rtol=1e-6, atol=1e-6)
    grads = jax.jit(jax.vmap(jax.grad(lambda p: J.apply(p, x).out_mem.sum())))(batch_of_params)
    assert grads["x_hidden.weight"].shape == (3, 128, 64)


def test_optax_training_step_learns():
    optax = pytest.importorskip("optax")
    J = snnspec.compile(EXAMPLES / "digits_mlp.snn", backend="jax").DigitsMLP
    params = J.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (16, 64)) * 2
    y = jnp.arange(16) % 10
    opt = optax.adam(5e-3)

    def loss_fn(p):
        return optax.softmax_cross_entropy_with_integer_labels(J.apply(p, x).out_spike, y).mean()

    @jax.jit
    def train_step(p, state):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, state = opt.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    state = opt.init(params)
    losses = []
    for _ in range(30):
        params, state, loss = train_step(params, state)
        losses.append(float(loss))
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.1, losses


def test_learnable_neuron_params_train_with_optax():
    optax = pytest.importorskip("optax")
    J = compiled(CASE["features_mlp"], "jax").N
    params = J.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 20)) * 3
    opt = optax.sgd(0.05)
    loss_fn = jax.jit(lambda p: loss_of(J.apply(p, x, key=jax.random.PRNGKey(2)), jnp))
    updates, _ = opt.update(jax.grad(loss_fn)(params), opt.init(params), params)
    new = optax.apply_updates(params, updates)
    assert not np.allclose(new["h.tau"], params["h.tau"]) and not np.allclose(new["h.threshold"], params["h.threshold"])


# -- randomness ----------------------------------------------------------------------------------

def test_rate_coding_needs_a_key_and_is_reproducible_with_one():
    J = snnspec.compile(EXAMPLES / "mnist_mlp.snn", backend="jax").MnistMLP
    params = J.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 784))
    with pytest.raises(ValueError, match="rate-coded"):
        J.apply(params, x)
    a = J.apply(params, x, key=jax.random.PRNGKey(5))
    b = jax.jit(J.apply)(params, x, key=jax.random.PRNGKey(5))
    np.testing.assert_array_equal(a.out_spike, b.out_spike)
    (seq,) = J.encode(x, key=jax.random.PRNGKey(5))
    assert seq.shape == (25, 4, 784) and set(np.unique(seq)) <= {0.0, 1.0}
    # the spike probability is the clipped value
    rate = np.asarray(seq).mean(axis=0)
    assert abs(rate.mean() - float(np.clip(x, 0, 1).mean())) < 0.01


def test_dropout_needs_train_and_a_key(same_draws):
    """No key or `train=False`: no dropout, as torch in eval mode; with both: torch's training mode."""
    case = CASE["features_mlp"]
    J = compiled(case, "jax").N
    net, params, inputs = build(case)
    x = jnp.asarray(inputs[0].numpy())
    key = jax.random.PRNGKey(0)
    train_t = net(*inputs)
    net.eval()
    eval_t = net(*inputs)
    for out_j, out_t in ((J.apply(params, x, key=key), train_t), (J.apply(params, x), eval_t),
                         (J.apply(params, x, key=key, train=False), eval_t)):
        for f in out_t._fields:
            close(getattr(out_t, f).detach().numpy(), getattr(out_j, f), 1e-5)
    assert not np.allclose(train_t.o_last.detach().numpy(), eval_t.o_last.detach().numpy())


# -- batchnorm -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet_snn", "features_conv1d"])
def test_batchnorm_running_statistics_and_eval_mode(name, float64):
    case = CASE[name]
    net_ir = network(case)
    J = getattr(compiled(case, "jax"), cls_name(net_ir))
    net, params, inputs = build(case)
    xs = [jnp.asarray(x.numpy()) for x in inputs]
    stats = J.init_buffers()
    buffers = {k: v for k, v in net.named_buffers() if k.rsplit(".", 1)[-1] in
               ("running_mean", "running_var", "num_batches_tracked")}
    assert list(stats) == list(buffers)
    for _ in range(2):  # two training batches: running statistics as torch keeps them
        out_t = net(*inputs)
        out_j, stats = J.apply_with_buffers(params, stats, *xs)
        for f in out_t._fields:
            close(getattr(out_t, f).detach().numpy(), getattr(out_j, f), 1e-9)
    buffers = {k: v for k, v in net.named_buffers() if k in stats}
    for k, v in buffers.items():
        close(v.numpy(), stats[k], 1e-9)
    net.eval()
    out_t = net(*inputs)
    out_j, same = J.apply_with_buffers(params, stats, *xs, train=False)
    assert all(same[k] is stats[k] for k in stats)
    for f in out_t._fields:
        close(getattr(out_t, f).detach().numpy(), getattr(out_j, f), 1e-9)


# -- one step at a time --------------------------------------------------------------------------

_READOUT = {"count": lambda s: s.sum(0), "rate": lambda s: s.mean(0), "last": lambda s: s[-1],
            "max": lambda s: s.max(0), "trace": lambda s: s}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_step_by_step_equals_apply(case, float64):
    """`init_state` + `step` scanned over `encode`'s sequences gives what `apply` gives (in evaluation:
    no dropout, batchnorm from running statistics), whatever the execution plan."""
    net_ir = network(case)
    J = getattr(compiled(case, "jax"), cls_name(net_ir))
    _net, params, inputs = build(case)
    xs = [jnp.asarray(x.numpy()) for x in inputs]
    key = jax.random.PRNGKey(3)
    expected = J.apply(params, *xs, key=key, train=False)
    seqs = J.encode(*xs, key=key)
    state = J.init_state(params, case.batch)

    def body(state, xs_t):
        return J.step(params, state, *xs_t)

    _, per_step = jax.lax.scan(body, state, seqs)
    for out in net_ir.outputs:
        field_name = expected._fields[net_ir.outputs.index(out)]
        got = _READOUT[out.readout](getattr(per_step, field_name))
        close(getattr(expected, field_name), got, 1e-9)


# -- neurons on their own ------------------------------------------------------------------------

STD_NEURONS = {"Leaky": 1.0, "Synaptic": 1.0, "Alpha": 1.0, "Lapicque": 1.0, "LIF": 1e-3, "CubaLIF": 1e-3,
               "IF": 1e-3, "LI": 1e-3, "CubaLI": 1e-3, "ALIF": 1e-3, "Izhikevich": 2.5e-4, "AdEx": 1e-4}
INPUT_SCALE = {"Izhikevich": 0.02, "AdEx": 2e-9}


@pytest.mark.parametrize("name", list(STD_NEURONS))
def test_std_neuron_namespace_equals_torch_module(name, float64):
    tm = snnspec.compile(ROOT / "specs" / "std" / "neurons.snn")
    jm = snnspec.compile(ROOT / "specs" / "std" / "neurons.snn", backend="jax")
    dt = STD_NEURONS[name]
    shape = (7,)
    module = getattr(tm, name)(shape, dt=dt)
    N = getattr(jm, name)
    values = N.init(shape, dt=dt)
    assert set(values) == {k for k, _ in module.named_buffers()} | {k for k, _ in module.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    n_inputs = len(snnspec.load_lowered(ROOT / "specs" / "std" / "neurons.snn").neurons[name].inputs)
    currents = [torch.rand((30, 4, *shape), generator=gen) * 3 * INPUT_SCALE.get(name, 1.0)
                for _ in range(n_inputs)]
    out_t, final_t, stacked_t = module.run(*currents, record=True)
    out_j, final_j, stacked_j = N.run(values, *[jnp.asarray(c.numpy()) for c in currents], dt=dt, record=True)
    close(out_t.numpy(), out_j, 1e-9)
    for a, b in zip(stacked_t, stacked_j, strict=True):
        close(a.numpy(), b, 1e-9)
    for a, b in zip(final_t, final_j, strict=True):
        close(a.numpy(), b, 1e-9)
    # one step from the start is `step` from `init_state`
    state = N.init_state(values, 4, shape, dt=dt)
    spike, _ = N.step(values, *[jnp.asarray(c[0].numpy()) for c in currents], state, dt=dt)
    close(out_t[0].numpy(), spike, 1e-9)


def test_neuron_surrogate_gradient_is_the_derived_one():
    """The spike is exactly 0/1 and its derivative is the spec's surrogate gradient (atan, alpha 2)."""
    jm = snnspec.compile(ROOT / "specs" / "std" / "neurons.snn", backend="jax")
    x = jnp.linspace(-2.0, 2.0, 41)
    spike = jm._Leaky_spike(x)
    assert set(np.unique(spike)) == {0.0, 1.0}
    grad = jax.vmap(jax.grad(jm._Leaky_spike))(x)
    np.testing.assert_allclose(grad, 1 / (1 + (np.pi * np.asarray(x)) ** 2), rtol=1e-6)
