"""Generated PyTorch networks (LANGUAGE.md §5, DESIGN.md "Execution and speed").

Layers outside recurrent cycles run layer-major (all T steps of a layer at once), layers inside
cycles step-major; both must give what a naive loop over time and over layers in declaration
order gives, with the network's own weights and its neuron modules stepped one call at a time.
Also: encodings, readouts, ops (`dense(bias = false)`, `scale`, `one_to_one`, `frozen`), several
paths into one input, named inputs, inputs' defaults, `t`, dtype/device moves, `torch.compile`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

import snnspec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"


@pytest.fixture(autouse=True)
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def example_text(name: str, **replace: str) -> str:
    text = (EXAMPLES / name).read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def grads(module: torch.nn.Module, loss: torch.Tensor, *extra: torch.Tensor) -> dict[str, torch.Tensor]:
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    values = torch.autograd.grad(loss, [p for _, p in named] + list(extra), allow_unused=True)
    out = {n: g for (n, _), g in zip(named, values[: len(named)], strict=True)}
    out.update({f"input{k}": g for k, g in enumerate(values[len(named):])})
    return out


def assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float = 1e-10) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for name in a:
        assert a[name] is not None and b[name] is not None, name
        scale = max(1.0, b[name].abs().max().item())
        torch.testing.assert_close(a[name] / scale, b[name] / scale, rtol=tol, atol=tol, msg=name)
        worst = max(worst, (a[name] - b[name]).abs().max().item() / scale)
    return worst


def loss_weights(outputs, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=gen) for o in outputs]


def weighted(outputs, ws) -> torch.Tensor:
    return sum((o * w).sum() for o, w in zip(outputs, ws, strict=True))


# -- execution plan --------------------------------------------------------------------------------

@pytest.mark.parametrize("example, modes", [
    ("mnist_mlp.snn", {"hidden": False, "out": False}),
    ("recurrent.snn", {"h": True, "readout": False}),
    ("cobalif.snn", {"exc": True, "inh": True, "readout": False}),
])
def test_layer_major_outside_cycles_step_major_inside(example, modes):
    net = next(iter(snnspec.load_lowered(EXAMPLES / example).networks.values()))
    assert {la.name: la.step_major for la in net.layers} == modes


# -- naive references ------------------------------------------------------------------------------

def test_mnist_mlp_layer_major_equals_naive_loop():
    mod = snnspec.compile(text=example_text("mnist_mlp.snn", **{"encode rate": "encode direct"}),
                          name="mnist_mlp_direct.snn")
    torch.manual_seed(0)
    net = mod.MnistMLP()
    x = torch.rand(2, 784)

    def naive(x):
        h_state = o_state = None
        count = 0
        for _ in range(net.steps):
            h_spike, h_state = net.hidden(net.x_hidden(x), h_state)
            o_spike, o_state = net.out(net.hidden_out(h_spike), o_state)
            count = count + o_spike
        return (count,)

    xg = x.clone().requires_grad_()
    out = net(xg)
    ref = naive(xg)
    assert 0 < out.out_spike.sum() < 2 * 10 * net.steps
    assert torch.equal(out.out_spike, ref[0])
    ws = loss_weights(out)
    assert_same_grads(grads(net, weighted(out, ws), xg), grads(net, weighted(ref, ws), xg))


def test_recurrent_step_major_equals_naive_loop():
    mod = snnspec.compile(EXAMPLES / "recurrent.snn")
    torch.manual_seed(0)
    net = mod.RecurrentSNN()
    x = (torch.rand(25, 2, 700) < 0.05).double()

    def naive(x):
        h_state = r_state = None
        h_spike = torch.zeros(x.shape[1], 128)
        spikes, vs = [], []
        for t in range(x.shape[0]):
            h_spike, h_state = net.h(net.x_h(x[t]) + net.h_h(h_spike), h_state)  # previous step's spikes
            v, r_state = net.readout(net.h_readout(h_spike), r_state)
            spikes.append(h_spike)
            vs.append(r_state.v)
        return torch.stack(vs).amax(0), torch.stack(spikes).mean(0)

    xg = x.clone().requires_grad_()
    out = net(xg)
    ref = naive(xg)
    assert 0 < out.hidden_rate.mean() < 0.5
    torch.testing.assert_close(out.hidden_rate, ref[1], rtol=0, atol=0)
    torch.testing.assert_close(out.logits, ref[0], rtol=1e-12, atol=1e-12)
    ws = loss_weights(out)
    assert_same_grads(grads(net, weighted(out, ws), xg), grads(net, weighted(ref, ws), xg))


def test_cobalif_step_major_group_equals_naive_loop():
    text = example_text("cobalif.snn", **{"encode rate": "encode direct", "steps = 500": "steps = 60"})
    mod = snnspec.compile(text=text, name="cobalif_direct.snn")
    torch.manual_seed(0)
    net = mod.CobaNet()
    with torch.no_grad():  # positive conductances (dimensionless weights, scaled to nS)
        for lin in (net.x_exc, net.exc_inh, net.inh_exc):
            lin.weight.uniform_(0.0, 0.04)
            lin.bias.zero_()
    x = torch.rand(2, 100)

    def naive(x):
        exc_state = inh_state = r_state = None
        inh_spike = torch.zeros(x.shape[0], 20)
        exc_spikes, vs = [], []
        for _ in range(net.steps):
            # exc is declared before inh: inh -> exc carries the previous step
            exc_spike, exc_state = net.exc(net.x_exc(x) * 1e-9, net.inh_exc(inh_spike) * 5e-9, exc_state)
            inh_spike, inh_state = net.inh(net.exc_inh(exc_spike) * 1e-9, torch.zeros(x.shape[0], 20), inh_state)
            _, r_state = net.readout(net.exc_readout(exc_spike), r_state)
            exc_spikes.append(exc_spike)
            vs.append(r_state.v)
        return torch.stack(vs).amax(0), torch.stack(exc_spikes).sum(0)

    xg = x.clone().requires_grad_()
    out = net(xg)
    ref = naive(xg)
    assert out.exc_spike.sum() > 20
    assert torch.equal(out.exc_spike, ref[1])
    torch.testing.assert_close(out.readout_v, ref[0], rtol=1e-12, atol=1e-12)
    ws = loss_weights(out)
    assert_same_grads(grads(net, weighted(out, ws), xg), grads(net, weighted(ref, ws), xg), tol=1e-9)


STATE_PATHS = """
from "std/neurons.snn" import Leaky
network StatePaths {
    steps = 12
    input x[3] encode direct
    layer a = Leaky(beta = 0.8)[4]
    layer b = Leaky(beta = 0.7)[5]
    x -> dense -> a
    a.mem -> dense -> b             # feed-forward inside the cycle: this step's a.mem
    b.mem -> dense -> a             # recurrent: the previous step's b.mem (zero at the first)
    a.mem -> dense -> a             # self-recurrent: the previous step's a.mem
    output b.spike count, a.mem trace, b.mem trace
}
"""


def test_state_paths_inside_a_step_major_group():
    """Paths that carry a state (not the spike) inside a recurrent group: a feed-forward one sees
    this step's value, a recurrent one the previous step's (zero at the first step)."""
    mod = snnspec.compile(text=STATE_PATHS, name="state_paths.snn")
    torch.manual_seed(1)
    net = mod.StatePaths()
    x = torch.rand(2, 3) * 2

    def naive(x):
        a_state = b_state = None
        a_mem_prev = torch.zeros(2, 4)
        b_mem_prev = torch.zeros(2, 5)
        count, a_mems, b_mems = 0, [], []
        for _ in range(net.steps):
            a_spike, a_state = net.a(net.x_a(x) + net.b_a(b_mem_prev) + net.a_a(a_mem_prev), a_state)
            b_spike, b_state = net.b(net.a_b(a_state.mem), b_state)
            a_mem_prev, b_mem_prev = a_state.mem, b_state.mem
            count = count + b_spike
            a_mems.append(a_state.mem)
            b_mems.append(b_state.mem)
        return count, torch.stack(a_mems), torch.stack(b_mems)

    names = dict(net.named_children())
    for attr in ("x_a", "a_b", "b_a", "a_a"):
        assert attr in names, sorted(names)
    out = net(x)
    ref = naive(x)
    for o, r in zip(out, ref, strict=True):
        torch.testing.assert_close(o, r, rtol=1e-12, atol=1e-12)


CLOCK = """
neuron Clock {
    state v = 0
    v <- t + 0 * I
    spike when v > 1000
}
network Clocks {
    steps = 5
    input x[2] encode direct
    layer a = Clock[2]
    layer b = Clock[2]
    x -> dense -> a
    x -> dense -> b
    b -> dense -> b
    output a.v trace, b.v trace
}
"""


def test_builtin_t_is_the_same_layer_major_and_step_major():
    mod = snnspec.compile(text=CLOCK, name="clock.snn")
    out = mod.Clocks()(torch.ones(1, 2))
    expected = torch.arange(5.0).reshape(5, 1, 1).expand(5, 1, 2)  # t = i * dt, dt = 1 step
    torch.testing.assert_close(out.a_v, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(out.b_v, expected, rtol=0, atol=1e-15)  # b runs step-major


# -- encodings ------------------------------------------------------------------------------------

PROBE = """
neuron Probe {
    state v = 0
    v <- I
}
"""


def plain(mod):
    """A generated module whose neurons run their plain step loop: these tests are about the
    network's plumbing, and the fused kernels' compilation (numba, per neuron) would dominate."""
    if hasattr(mod, "FUSED"):
        mod.FUSED = False
    return mod


def probe_net(encoding: str, shape: str = "5", steps: int = 10) -> torch.nn.Module:
    text = PROBE + f"""
network Enc {{
    steps = {steps}
    input x[{shape}] encode {encoding}
    layer p = Probe
    x -> scale(1) -> p
    output p.v trace
}}
"""
    return plain(snnspec.compile(text=text, name="enc.snn")).Enc()


def test_direct_encoding_repeats_the_value():
    x = torch.rand(3, 5)
    out = probe_net("direct")(x).p_v
    assert out.shape == (10, 3, 5)
    assert torch.equal(out, x.expand(10, 3, 5))


def test_rate_encoding_statistics():
    torch.manual_seed(0)
    values = torch.tensor([-0.5, 0.0, 0.1, 0.3, 0.5, 0.9, 1.0, 1.7])
    x = values.expand(60, 8)
    out = probe_net("rate", "8", steps=400)(x).p_v
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    rate = out.mean((0, 1))
    expected = values.clamp(0, 1)
    assert rate[0] == 0 and rate[1] == 0 and rate[-2] == 1 and rate[-1] == 1  # clipped to [0, 1]
    # 24000 Bernoulli draws per value: standard error <= 0.0033
    torch.testing.assert_close(rate, expected, rtol=0, atol=0.015)


def test_latency_encoding_one_spike_earlier_for_larger_values():
    x = torch.tensor([[0.0, 0.1, 0.2, 0.25, 0.5, 1.0]])
    out = probe_net("latency(tau = 5, threshold = 0.2)", "6", steps=12)(x).p_v[:, 0]
    fire = [round(5 * math.log(v / (v - 0.2))) if v > 0.2 else None for v in x[0].tolist()]
    assert fire[3:] == [8, 3, 1]
    for k, step in enumerate(fire):
        expected = torch.zeros(12)
        if step is not None and step < 12:
            expected[step] = 1
        assert torch.equal(out[:, k], expected), (k, out[:, k])


def test_latency_tau_is_a_time():
    """`tau` with a unit is converted to steps by the network's dt."""
    text = PROBE + """
network Lat {
    dt = 0.5 ms
    steps = 12
    input x[1] encode latency(tau = 2.5 ms, threshold = 0.2)
    layer p = Probe
    x -> scale(1) -> p
    output p.v trace
}
"""
    out = plain(snnspec.compile(text=text, name="lat.snn")).Lat()(torch.tensor([[0.25]])).p_v.flatten()
    assert out.nonzero().flatten().tolist() == [round(5 * math.log(0.25 / 0.05))]


def test_delta_encoding_spikes_on_rises_above_threshold():
    seq = torch.tensor([0.0, 0.5, 0.55, 0.2, 0.9, 0.9, 1.2]).reshape(7, 1, 1)
    out = probe_net("delta(threshold = 0.1)", "1")(seq).p_v.flatten()
    assert out.tolist() == [0, 1, 0, 0, 1, 0, 1]  # x[-1] = 0; only rises by more than 0.1


def test_none_encoding_passes_the_sequence_and_sets_steps():
    seq = torch.randn(7, 2, 5)
    out = probe_net("none")(seq).p_v
    assert torch.equal(out, seq)  # 7 steps, not the spec's 10


# -- readouts -------------------------------------------------------------------------------------

def test_readouts():
    text = PROBE + """
network Readouts {
    steps = 9
    input x[4] encode none
    layer p = Probe
    x -> scale(1) -> p
    output c = p.v count, r = p.v rate, l = p.v last, m = p.v max, tr = p.v trace
}
"""
    net = plain(snnspec.compile(text=text, name="readouts.snn")).Readouts()
    seq = torch.randn(9, 3, 4)
    out = net(seq)
    assert out._fields == ("c", "r", "l", "m", "tr")
    assert torch.equal(out.tr, seq)
    torch.testing.assert_close(out.c, seq.sum(0))
    torch.testing.assert_close(out.r, seq.mean(0))
    assert torch.equal(out.l, seq[-1])
    assert torch.equal(out.m, seq.amax(0))


# -- ops, several paths, named inputs, defaults, frozen ------------------------------------------

OPS = PROBE + """
neuron Two {
    state v = 0
    input a
    input b = 0.5
    v <- a + 10 * b
}

network Ops {
    steps = 4
    input x[5] encode direct
    input y[3] encode none
    layer total = Probe[4]
    layer each = Probe[5]
    layer two = Two[4]
    x -> dense -> total
    y -> dense(bias = false) -> total
    x -> scale(2.5) -> one_to_one -> each
    x -> dense -> scale(0.5) -> two.a frozen
    output total.v trace, each.v trace, two.v trace
}
"""


def test_ops_several_paths_named_inputs_defaults_frozen():
    net = plain(snnspec.compile(text=OPS, name="ops.snn")).Ops()
    torch.manual_seed(0)
    with torch.no_grad():
        net.x_each.copy_(torch.randn(5))
    assert net.y_total.bias is None  # dense(bias = false)
    assert not any(p.requires_grad for p in net.x_two.parameters())  # frozen
    x = torch.rand(2, 5, requires_grad=True)
    y = torch.randn(6, 2, 3)
    out = net(x, y)
    assert out.total_v.shape == (6, 2, 4)  # steps from the `none` input
    # several paths into one input are summed
    torch.testing.assert_close(out.total_v, net.x_total(x) + y @ net.y_total.weight.T, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(out.each_v, (2.5 * x * net.x_each).expand(6, 2, 5), rtol=1e-14, atol=1e-14)
    # an input no path feeds takes its default (b = 0.5)
    torch.testing.assert_close(out.two_v, (0.5 * net.x_two(x) + 5.0).expand(6, 2, 4), rtol=1e-14, atol=1e-14)
    # named inputs, in any order
    by_name = net(y=y, x=x)
    assert all(torch.equal(a, b) for a, b in zip(out, by_name, strict=True))
    sum(o.sum() for o in out).backward()
    assert net.x_two.weight.grad is None and net.x_two.bias.grad is None
    assert net.x_total.weight.grad is not None and net.y_total.weight.grad is not None
    assert net.x_each.grad is not None and x.grad is not None


# -- dtype and device -----------------------------------------------------------------------------

def test_double_and_to_carry_params_and_state():
    torch.set_default_dtype(torch.float32)
    mod = snnspec.compile(EXAMPLES / "recurrent.snn")
    net = mod.RecurrentSNN()
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert net.h.init_state(2).v.dtype == torch.float32
    net.double()
    assert all(t.dtype == torch.float64 for t in [*net.parameters(), *net.buffers()])
    assert net.h.init_state(2).v.dtype == torch.float64
    x = (torch.rand(5, 2, 700) < 0.1).double()
    out = net(x)
    assert all(o.dtype == torch.float64 for o in out)
    net.to(torch.float32)
    assert net.readout.init_state(1).v.dtype == torch.float32
    out32 = net(x.float())
    assert all(o.dtype == torch.float32 for o in out32)
    # a neuron without params still follows the module's dtype
    probe = snnspec.compile(text=PROBE, name="probe.snn").Probe(3)
    assert probe.to(torch.float64).init_state(2).v.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_carries_params_and_state():
    mod = snnspec.compile(EXAMPLES / "cobalif.snn")
    torch.manual_seed(0)
    net = mod.CobaNet()
    x = torch.rand(2, 100)
    net.double()
    torch.manual_seed(1)
    cpu = net(x.double())
    net.to("cuda")
    assert net.exc.init_state(2).v.device.type == "cuda"
    torch.manual_seed(1)
    out = net(x.double().cuda())
    assert all(o.device.type == "cuda" for o in out)
    assert all(o.shape == c.shape for o, c in zip(out, cpu, strict=True))


# -- torch.compile --------------------------------------------------------------------------------

SMALL = """
from "std/neurons.snn" import Leaky, LI
network Small {
    steps = 8
    input x[6] encode direct
    layer h = Leaky(beta = 0.9)[5]
    layer o = LI[3]
    x -> dense -> h
    h -> dense -> h
    h -> dense -> o
    output o.v max, h.spike count
}
"""


def _compiled_agrees(backend: str) -> None:
    torch.set_default_dtype(torch.float32)
    mod = snnspec.compile(text=SMALL, name="small.snn")
    torch.manual_seed(0)
    net = mod.Small()
    x = torch.rand(2, 6) * 3
    ref = net(x)
    compiled = torch.compile(net, backend=backend)
    out = compiled(x)
    assert ref.h_spike.sum() > 0
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ws = loss_weights(ref)
    g_ref = grads(net, weighted(ref, ws))
    g_out = grads(net, weighted(compiled(x), ws))
    for name in g_ref:
        torch.testing.assert_close(g_out[name], g_ref[name], rtol=1e-4, atol=1e-5)


def test_torch_compile_aot_eager_agrees():
    """Dynamo traces the generated network (no graph-breaking constructs) and agrees."""
    torch._dynamo.reset()
    _compiled_agrees("aot_eager")


@pytest.mark.slow
def test_torch_compile_inductor_agrees():
    """The default backend (inductor, C++ on CPU): about 30 s on 2 cores, hence slow."""
    torch._dynamo.reset()
    start = time.time()
    _compiled_agrees("inductor")
    assert time.time() - start < 600
