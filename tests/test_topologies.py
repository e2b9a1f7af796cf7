"""Deep topologies in the PyTorch backend: convolution, pooling, batch norm, dropout, delays,
lateral inhibition and residual sums (LANGUAGE.md §5; docs/language-notes.md).

Oracles: a snnTorch-built CSNN with the same weights, and each op's plain torch counterpart
applied step by step.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import snnspec
from tests.conftest import SPECS

snn = pytest.importorskip("snntorch")


def build(text: str, name: str = "topo.snn"):
    return snnspec.compile(text=text, name=name)


# ---- the CSNN against snnTorch ------------------------------------------------------------------


class SnnTorchCSNN(nn.Module):
    """snnTorch tutorial 6, step-major, fast_sigmoid(25), beta 0.5."""

    def __init__(self, conv1, conv2, fc):
        super().__init__()
        from snntorch import surrogate

        grad = surrogate.fast_sigmoid(slope=25)
        beta = torch.tensor([0.5], dtype=torch.float64)  # shape (1,): promotes the float32 reset
        threshold = torch.tensor([1.0], dtype=torch.float64)
        self.conv1, self.conv2, self.fc = conv1, conv2, fc
        self.lif1 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=grad)
        self.lif2 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=grad)
        self.lif3 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=grad)

    def forward(self, x, steps):
        m1, m2, m3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
        spikes, mems = [], []
        for _ in range(steps):
            s1, m1 = self.lif1(nn.functional.max_pool2d(self.conv1(x), 2), m1)
            s2, m2 = self.lif2(nn.functional.max_pool2d(self.conv2(s1.double()), 2), m2)  # its spikes are float32
            s3, m3 = self.lif3(self.fc(s2.double().flatten(1)), m3)
            spikes.append(s3)
            mems.append(m3)
        return torch.stack(spikes), torch.stack(mems)


def test_csnn_equals_snntorch():
    mod = snnspec.compile(SPECS / "examples" / "csnn.snn")
    torch.manual_seed(0)
    net = mod.CSNN().double()
    net.steps = 12
    with torch.no_grad():  # stronger weights than the default init, so every layer spikes
        for param in net.parameters():
            param.mul_(5)
    ref = SnnTorchCSNN(net.x_c1, net.c1_c2, net.c2_out)  # the same modules: the same weights
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64) * 4
    out = net(x)
    spikes, mems = ref(x, 12)
    assert torch.equal(out.out_spike, spikes.sum(0).double())
    assert spikes.sum() > 0
    torch.testing.assert_close(out.out_mem, mems, rtol=1e-10, atol=1e-10)
    params = list(net.parameters())
    loss_ours = (out.out_mem**2).sum() + (out.out_spike * torch.arange(10.0, dtype=torch.float64)).sum()
    loss_ref = (mems**2).sum() + (spikes.sum(0).double() * torch.arange(10.0, dtype=torch.float64)).sum()
    g_ours = torch.autograd.grad(loss_ours, params)
    g_ref = torch.autograd.grad(loss_ref, params)
    for a, b in zip(g_ours, g_ref):
        assert ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() < 1e-6


# ---- every op against its plain torch counterpart, step by step --------------------------------

OPS = """
from "std/neurons.snn" import Leaky
network Ops {{
    steps = 6
    input x[{shape}] encode none
    layer h = Leaky(beta = 0.5)
    x -> {ops} -> h
    output h.mem trace
}}
"""


def run_ops(shape: str, ops: str, x: torch.Tensor):
    mod = build(OPS.format(shape=shape, ops=ops))
    torch.manual_seed(0)
    return mod, mod.Ops().double()


def leaky_reference(currents: list[torch.Tensor], beta: float = 0.5) -> torch.Tensor:
    mem = torch.zeros_like(currents[0])
    spiked = torch.zeros_like(currents[0])
    out = []
    for current in currents:
        mem = beta * mem + current - spiked
        spiked = (mem > 1).double()
        out.append(mem)
    return torch.stack(out)


@pytest.mark.parametrize("ops, shape, per_step", [
    ("conv2d(4, kernel = 3, stride = 2, padding = 1)", "2, 9, 9",
     lambda net, x: net.x_h(x)),
    ("conv1d(3, kernel = 4)", "2, 12", lambda net, x: net.x_h(x)),
    ("maxpool(2)", "2, 8, 8", lambda net, x: nn.functional.max_pool2d(x, 2)),
    ("avgpool(3)", "2, 9, 9", lambda net, x: nn.functional.avg_pool2d(x, 3)),
    ("sumpool(2)", "2, 8", lambda net, x: nn.functional.avg_pool1d(x, 2) * 2),
    ("flatten -> dense(5)", "2, 3, 3", lambda net, x: net.x_h(x.flatten(1))),
    ("scale(2.5)", "7", lambda net, x: x * 2.5),
    ("one_to_one", "7", lambda net, x: x * net.x_h),
])
def test_op_equals_torch_step_by_step(ops, shape, per_step):
    dims = tuple(int(d) for d in shape.split(","))
    torch.manual_seed(1)
    x = torch.rand(6, 2, *dims, dtype=torch.float64) * 3
    _mod, net = run_ops(shape, ops, x)
    out = net(x).h_mem
    expected = leaky_reference([per_step(net, x[t]) for t in range(6)])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_delay_shifts_by_steps_with_zeros_first():
    _mod, net = run_ops("4", "delay(2) -> scale(1)", None)
    x = torch.rand(6, 3, 4, dtype=torch.float64)
    out = net(x).h_mem
    shifted = [torch.zeros_like(x[0])] * 2 + [x[t] for t in range(4)]
    torch.testing.assert_close(out, leaky_reference(shifted))


def test_delay_inside_a_recurrent_group_matches_layer_major():
    """The same delayed path, computed in a step loop (a recurrent group) and layer-major."""
    text = """
from "std/neurons.snn" import Leaky
network D {
    steps = 8
    input x[3] encode none
    layer a = Leaky(beta = 0.5)[3]
    layer b = Leaky(beta = 0.5)[3]
    x -> scale(2) -> a
    a -> delay(3) -> dense -> b
    b -> scale(0) -> a
    output b.mem trace
}"""
    mod = build(text)
    net = mod.D().double()
    x = torch.rand(8, 2, 3, dtype=torch.float64)
    assert net.a.__class__.__name__ == "Leaky"
    out = net(x).b_mem
    a_spikes = []
    mem = spiked = torch.zeros(2, 3, dtype=torch.float64)
    for t in range(8):
        mem = 0.5 * mem + 2 * x[t] - spiked
        spiked = (mem > 1).double()
        a_spikes.append(spiked)
    delayed = [torch.zeros(2, 3, dtype=torch.float64)] * 3 + a_spikes[:5]
    expected = leaky_reference([net.a_b(s) for s in delayed])
    torch.testing.assert_close(out, expected)


def test_lateral_inhibition_is_all_to_all_without_self():
    text = """
from "std/neurons.snn" import Leaky
network L {
    steps = 10
    input x[5] encode none
    layer h = Leaky(beta = 0.5)[5]
    x -> scale(1) -> h
    h -> lateral(w = 0.7) -> h
    output h.mem trace
}"""
    net = build(text).L().double()
    x = torch.rand(10, 2, 5, dtype=torch.float64) * 2
    out = net(x).h_mem
    mem = spiked = torch.zeros(2, 5, dtype=torch.float64)
    expected = []
    for t in range(10):
        inhibition = -0.7 * (spiked.sum(1, keepdim=True) - spiked)  # previous step, diagonal zero
        mem = 0.5 * mem + x[t] + inhibition - spiked
        spiked = (mem > 1).double()
        expected.append(mem)
    torch.testing.assert_close(out, torch.stack(expected))


# ---- dropout and batch norm: train and eval ----------------------------------------------------

DROP = """
from "std/neurons.snn" import Leaky
network Drop {
    steps = 7
    input x[200] encode direct
    layer h = Leaky(beta = 0.5)[200]
    x -> dropout(0.5) -> scale(1) -> h
    output h.mem trace
}"""


def test_dropout_one_mask_per_sequence_and_off_in_eval():
    net = build(DROP).Drop().double()
    x = torch.ones(4, 200, dtype=torch.float64)
    torch.manual_seed(0)
    mem = net(x).h_mem  # [T, B, N]: zero input where dropped, in every step
    dropped = mem[0] == 0
    assert 0.35 < dropped.double().mean() < 0.65
    assert torch.equal(mem == 0, dropped.expand_as(mem))  # the same mask at every step
    assert not torch.equal(dropped[0], dropped[1])  # one mask per sequence
    kept = mem[0][~dropped]
    torch.testing.assert_close(kept, torch.full_like(kept, 2.0))  # scaled by 1 / (1 - p)
    net.eval()
    torch.testing.assert_close(net(x).h_mem[0], torch.ones(4, 200, dtype=torch.float64))


def test_batchnorm_over_batch_and_time_with_running_stats():
    text = """
from "std/neurons.snn" import Leaky
network BN {
    steps = 5
    input x[3, 4, 4] encode none
    layer h = Leaky(beta = 0.5)
    x -> batchnorm -> h
    output h.mem trace
}"""
    net = build(text).BN().double()
    torch.manual_seed(0)
    x = torch.randn(5, 6, 3, 4, 4, dtype=torch.float64) * 3 + 1
    first = net(x).h_mem[0]  # step 0: mem equals the normalised current
    flat = x.flatten(0, 1)  # [T * B, C, H, W]: statistics over batch and time
    mean = flat.mean((0, 2, 3), keepdim=True)
    var = flat.var((0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(first, ((x[0] - mean[0]) / torch.sqrt(var[0] + 1e-5)))
    bn = net.x_h
    torch.testing.assert_close(bn.running_mean, 0.1 * mean.flatten())
    net.eval()
    eval_first = net(x).h_mem[0]
    expected = (x[0] - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-5)
    torch.testing.assert_close(eval_first, expected)


def test_batchnorm_on_a_step_by_step_path_is_a_clear_error():
    text = """
from "std/neurons.snn" import Leaky
network Bad {
    steps = 3
    input x[4] encode none
    layer h = Leaky[4]
    x -> scale(1) -> h
    h -> dense -> batchnorm -> h
    output h.spike count
}"""
    with pytest.raises(snnspec.SpecError, match="batchnorm"):
        snnspec.generate(text=text, name="bad.snn")


# ---- a deep residual network trains --------------------------------------------------------------


def resnet_text(blocks: int) -> str:
    lines = ["from \"std/neurons.snn\" import Leaky", "network Deep {", "    steps = 4",
             "    input x[2, 8, 8] encode direct", "    layer stem = Leaky(beta = 0.9)"]
    paths = ["    x -> conv2d(8, kernel = 3, padding = 1, bias = false) -> batchnorm -> stem"]
    prev = "stem"
    for k in range(blocks):
        lines += [f"    layer a{k} = Leaky(beta = 0.9)", f"    layer b{k} = Leaky(beta = 0.9)"]
        paths += [f"    {prev} -> conv2d(8, kernel = 3, padding = 1, bias = false) -> batchnorm -> a{k}",
                  f"    a{k} -> conv2d(8, kernel = 3, padding = 1, bias = false) -> batchnorm -> b{k}",
                  f"    {prev} -> scale(1) -> b{k}"]
        prev = f"b{k}"
    lines.append("    layer out = Leaky(beta = 0.9)[4]")
    paths.append(f"    {prev} -> avgpool(2) -> flatten -> dense -> out")
    return "\n".join(lines + paths + ["    output out.mem trace", "}"])


def test_twenty_layer_residual_snn_trains_without_exploding_or_vanishing_gradients(capsys):
    """10 residual blocks = 20 convolutional spiking layers (+ stem and readout), BN on currents."""
    mod = build(resnet_text(10), "deep.snn")
    torch.manual_seed(0)
    net = mod.Deep()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(8, 2, 8, 8) * 2
    y = torch.randint(0, 4, (8,))
    losses, norms = [], []
    for _ in range(4):
        logits = net(x).out_mem.sum(0)
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        norms.append([c.weight.grad.norm().item() for c in convs])
        opt.step()
        losses.append(loss.item())
    first = norms[0]
    with capsys.disabled():
        print("\nper-layer conv weight gradient norms (stem first):", " ".join(f"{n:.2e}" for n in first))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert len(first) == 21
    assert min(first) > 1e-6 and max(first) < 1e3  # neither vanished nor exploded
    assert max(first) / min(first) < 1e4
