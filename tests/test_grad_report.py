"""The gradient-health report (snnspec/train/health.py, `snnspec train --grad-report`): its numbers
against hand computations on tiny nets, the warning on the deep residual example, and the CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import snnspec  # noqa: E402
from snnspec.cli import app, optional_values  # noqa: E402
from snnspec.train.health import GradRecorder, grad_report, hints  # noqa: E402
from snnspec.train.health_warn import Hints, gradient_warning  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEEP = ROOT / "specs" / "examples" / "deep_resnet.snn"

# h: three neurons that integrate without leak (beta = 1) fed through an identity dense, so their
# spikes can be counted by hand; out: two paths (from h and a skip from x) into one layer
TINY = """
from "std/neurons.snn" import Leaky
network Tiny {
    steps = STEPS
    input x[3] encode direct
    layer h = Leaky(beta = 1)[3]
    layer out = Leaky[2]
    x -> dense -> h
    h -> dense -> out
    x -> dense -> out
    output out.spike count
}
"""


def tiny(steps: int = 6):  # type: ignore[no-untyped-def]
    lowered = snnspec.load_lowered(text=TINY.replace("STEPS", str(steps)), name="tiny.snn")
    torch.manual_seed(0)
    return lowered, snnspec.compile_lowered(lowered).Tiny()


def count_loss(out):  # type: ignore[no-untyped-def]
    return (out.out_spike * torch.tensor([1.0, -2.0])).sum()


def identity_input(net) -> None:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        net.x_h.weight.copy_(torch.eye(3))
        net.x_h.bias.zero_()


def test_weight_gradient_norms_are_the_norms_of_p_grad_of_the_paths_into_each_layer():
    lowered, net = tiny()
    x = torch.rand(4, 3) * 3
    report = grad_report(net, lowered, x, count_loss)
    by = {la.layer: la for la in report.layers}

    def norm(*keys: str) -> float:
        named = dict(net.named_parameters())
        return math.sqrt(sum(float(named[k].grad.norm()) ** 2 for k in keys))

    assert by["h"].weight_grad == pytest.approx(norm("x_h.weight", "x_h.bias"), rel=1e-6)
    assert by["out"].weight_grad == pytest.approx(
        norm("h_out.weight", "h_out.bias", "x_out.weight", "x_out.bias"), rel=1e-6)
    assert by["out"].weight_grad > 0 and by["h"].weight_grad > 0
    assert [la.depth for la in report.layers] == [1, 2]


def test_spike_rate_silent_and_saturated_fractions_against_a_hand_count():
    lowered, net = tiny(steps=6)
    identity_input(net)
    # Leaky, beta 1, threshold 1, reset by subtraction one step late (LANGUAGE.md §7): I = 2 spikes
    # at every step; I = 0 never; I = 0.7: mem 0.7 1.4 1.1 0.8 1.5 1.2, four spikes; I = 0.3: mem
    # 0.3 0.6 0.9 1.2 0.5 0.8, one spike; I = 1: mem 1 2 2 2 2 2, five spikes (not at the first step)
    x = torch.tensor([[2.0, 0.0, 0.7], [0.0, 2.0, 0.0], [0.3, 0.0, 1.0]])
    report = grad_report(net, lowered, x, count_loss)
    h = report.layers[0]
    counts = [6, 0, 4, 0, 6, 0, 1, 0, 5]
    assert h.spike_rate == pytest.approx(sum(counts) / (9 * 6))
    assert h.silent == pytest.approx(4 / 9)
    assert h.saturated == pytest.approx(2 / 9)
    # the std Leaky's surrogate, atan(alpha = 2): d spike / d x = 1 / (pi^2 x^2 + 1) at x = mem - 1
    mems = [[2, 3, 4, 5, 6, 7], [0] * 6, [0.7, 1.4, 1.1, 0.8, 1.5, 1.2],
            [0] * 6, [2, 3, 4, 5, 6, 7], [0] * 6,
            [0.3, 0.6, 0.9, 1.2, 0.5, 0.8], [0] * 6, [1, 2, 2, 2, 2, 2]]
    sg = [1 / (math.pi ** 2 * (m - 1) ** 2 + 1) for row in mems for m in row]
    assert h.surrogate == pytest.approx(sum(sg) / len(sg), rel=1e-5)


def test_input_current_gradient_of_one_step_is_the_bias_gradient():
    # one step, one sample: d loss / d I of layer h is d loss / d bias of the dense that feeds it
    lowered, net = tiny(steps=1)
    x = torch.tensor([[1.5, 0.2, 0.9]])
    report = grad_report(net, lowered, x, lambda out: (out.out_spike.sum() - 1) ** 2)
    h, out = report.layers
    assert h.current_grad == pytest.approx(float(net.x_h.bias.grad.norm()), rel=1e-6)
    grad_out_bias = net.x_out.bias.grad
    assert out.current_grad == pytest.approx(float(grad_out_bias.norm()), rel=1e-6)
    assert torch.equal(net.h_out.bias.grad, grad_out_bias)


def test_recording_changes_no_number_and_restores_the_modules():
    lowered, net = tiny()
    x = torch.rand(5, 3) * 3
    count_loss(net(x)).backward()
    plain = {k: p.grad.clone() for k, p in net.named_parameters()}
    spike_cls = type(net.h).step.__globals__["LeakySpike"]
    net.zero_grad()
    with GradRecorder(net, lowered):
        count_loss(net(x)).backward()
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, plain[k], rtol=1e-6, atol=1e-7)
    assert "step" not in vars(net.h) and net.h.kernels is None
    assert type(net.h).step.__globals__["LeakySpike"] is spike_cls


def test_a_step_loop_records_what_the_layer_major_run_records():
    # with a recurrent path of zero weight, h runs step by step but computes what it computed all
    # steps at once: the same report
    lowered, net = tiny()
    text = TINY.replace("STEPS", "6").replace("    x -> dense -> out", "    x -> dense -> out\n    h -> dense -> h")
    rec_lowered = snnspec.load_lowered(text=text, name="tiny_rec.snn")
    rec_net = snnspec.compile_lowered(rec_lowered).Tiny()
    rec_net.load_state_dict({**net.state_dict(), "h_h.weight": torch.zeros(3, 3), "h_h.bias": torch.zeros(3)})
    assert any(st.kind == "step_loop" for st in rec_lowered.networks["Tiny"].program.statements)
    x = torch.rand(4, 3) * 3
    a, b = grad_report(net, lowered, x, count_loss), grad_report(rec_net, rec_lowered, x, count_loss)
    for la, lb in zip(a.layers, b.layers):
        assert lb.current_grad == pytest.approx(la.current_grad, rel=1e-5)
        assert (lb.spike_rate, lb.silent, lb.saturated) == (la.spike_rate, la.silent, la.saturated)
        assert lb.surrogate == pytest.approx(la.surrogate, rel=1e-6)


def test_recurrent_step_loops_are_recorded():
    spec = ROOT / "specs" / "examples" / "recurrent.snn"
    lowered = snnspec.load_lowered(spec)
    torch.manual_seed(0)
    net = snnspec.compile_lowered(lowered).RecurrentSNN()
    x = (torch.rand(12, 2, 700) < 0.2).float()
    report = grad_report(net, lowered, x, lambda out: out.logits.sum())
    h, readout = report.layers
    assert h.current_grad is not None and h.current_grad > 0 and 0 <= h.spike_rate <= 1
    assert h.surrogate is not None and h.surrogate > 0
    assert readout.spike_rate is None and readout.surrogate is None  # LI does not spike
    assert readout.current_grad is not None and readout.current_grad > 0


def test_every_named_input_of_a_neuron_is_recorded():
    # CobaLIF has two inputs (ge_in, gi_in): each gets a current gradient, summed in the layer's norm
    lowered = snnspec.load_lowered(ROOT / "specs" / "examples" / "cobalif.snn")
    net_ir = lowered.networks["CobaNet"].model_copy(update={"steps": 40})
    torch.manual_seed(0)
    net = snnspec.compile_lowered(lowered).CobaNet()
    net.steps = 40
    rec = GradRecorder(net, net_ir)
    grads: dict[str, list[torch.Tensor]] = {"ge_in": [], "gi_in": []}
    step = type(net.exc).step

    def spy(self, p, ge_in, gi_in, state, t=0.0):  # type: ignore[no-untyped-def]
        for key, current in (("ge_in", ge_in), ("gi_in", gi_in)):
            if self is net.exc and isinstance(current, torch.Tensor) and current.requires_grad:  # inh: CobaLIF too
                current.register_hook(lambda g, key=key: grads[key].append(g.clone()))
        return step(self, p, ge_in, gi_in, state, t)

    type(net.exc).step = spy
    try:
        with rec:
            net(torch.full((3, 100), 0.5)).readout_v.sum().backward()
    finally:
        type(net.exc).step = step
    exc = rec.report().layers[0]
    assert grads["ge_in"] and grads["gi_in"]
    by_hand = math.sqrt(sum(float(g.double().pow(2).sum()) for gs in grads.values() for g in gs))
    assert exc.current_grad == pytest.approx(by_hand, rel=1e-9)


def deep_report(slope: float, batchnorm: bool = True):  # type: ignore[no-untyped-def]
    text = DEEP.read_text()
    assert "param slope = 1 " in text and text.count(" -> batchnorm") >= 21
    text = text.replace("param slope = 1 ", f"param slope = {slope:g} ")
    lowered = snnspec.load_lowered(text=text if batchnorm else text.replace(" -> batchnorm", ""),
                                   name="deep_resnet.snn")
    torch.manual_seed(0)
    net = snnspec.compile_lowered(lowered).DeepResNet()
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 10
    return grad_report(net, lowered, x, lambda out: torch.nn.functional.cross_entropy(out.out_spike, y))


def test_deep_resnet_has_twenty_spiking_layers_and_a_tuned_surrogate_gives_no_warning():
    report = deep_report(1)
    assert len(report.layers) >= 20
    assert all(la.spike_rate is not None for la in report.layers)
    assert report.warning is None


def test_deep_resnet_with_a_narrow_surrogate_warns_that_the_gradient_vanishes():
    report = deep_report(25)
    assert report.warning is not None
    m = re.match(r"gradient norm falls ([\d.]+)x per layer from layer (\d+) \(\w+\) back to layer 1", report.warning)
    assert m, report.warning
    assert float(m.group(1)) > 2.5
    # every layer but the readout normalises its currents: batchnorm is advised for that one only
    assert report.warning.endswith("widen the surrogate (fast_sigmoid: a smaller slope) or add batchnorm on the "
                                   "input current (of out)")


def test_deep_resnet_without_batchnorm_warns_even_at_the_tuned_width():
    # the currents shrink layer by layer until the neurons stop spiking (Ledinauskas et al.'s second fix)
    warning = deep_report(1, batchnorm=False).warning
    assert warning is not None and warning.startswith("gradient norm falls")
    assert "or add batchnorm on the input current." in warning
    assert re.search(r"\. 1\d hidden layer\(s\) never spike on these samples \(", warning), warning


def test_hints_name_each_layers_surrogate_and_the_layers_with_batchnorm():
    lowered = snnspec.load_lowered(DEEP)
    h = hints(lowered.networks["DeepResNet"], dict(lowered.neurons))
    assert set(h.surrogates.values()) == {"fast_sigmoid"} and len(h.surrogates) == 22
    assert "out" not in h.normalised and {"stem", "b1a", "b1", "b10"} <= h.normalised
    tiny_lowered, _ = tiny()
    assert hints(tiny_lowered.networks["Tiny"], {}) == Hints({}, frozenset(), frozenset({"out"}))


class _L:
    def __init__(self, depth: int, g: float | None, silent: float | None = 0.5):
        self.layer, self.depth, self.current_grad, self.silent = f"l{depth}", depth, g, silent


def test_warning_reads_the_trend_not_a_one_off_step():
    flat = [_L(d, 1.0 * 1.1 ** -d) for d in range(1, 10)] + [_L(10, 50.0)]  # a readout jump at the end
    assert gradient_warning(flat) is None
    zigzag = [_L(d, (0.1 if d % 2 else 1.0) * 1.2 ** -d) for d in range(1, 21)]  # residual blocks' pattern
    assert gradient_warning(zigzag) is None
    assert "falls 1.6x per layer" in gradient_warning([_L(d, (0.1 if d % 2 else 1.0) * 1.6 ** d) for d in range(1, 21)])
    growing = [_L(d, 2.0 ** (10 - d)) for d in range(1, 11)]
    assert gradient_warning(growing).startswith("gradient norm grows 2.0x per layer from layer 10 (l10)")
    dead = [_L(1, 0.0), _L(2, 1.0), _L(3, 1.0)]
    assert "exactly 0 at layer 1" in gradient_warning(dead)
    names = [f"l{d}" for d in range(1, 11)]
    advice = gradient_warning(growing, Hints(dict.fromkeys(names, "atan"), frozenset(names)))
    assert advice.endswith("narrow the surrogate (atan: a larger alpha); their input currents already pass "
                           "through batchnorm")
    quiet = [_L(1, 1.0), _L(2, 1.0, silent=1.0), _L(3, 1.0, silent=1.0), _L(4, 1.0, silent=1.0)]
    assert gradient_warning(quiet, Hints(outputs=frozenset({"l4"}))) == (
        "2 hidden layer(s) never spike on these samples (l2, l3): nothing passes through them but the "
        "surrogate's tail; add batchnorm on their input current or start from larger weights")
    falling = [_L(d, 3.0 ** d) for d in range(1, 11)]
    advice = gradient_warning(falling, Hints(dict.fromkeys(names, "triangular")))
    assert advice.startswith("gradient norm falls 3.0x per layer from layer 10 (l10) back to layer 1 (l1)")
    assert advice.endswith("widen the surrogate (triangular: a larger width) or add batchnorm on the input current")


def test_grad_report_flag_takes_an_optional_number():
    assert optional_values(["train", "f.snn", "--grad-report"]) == ["train", "f.snn", "--grad-report", "3"]
    assert optional_values(["train", "--grad-report", "f.snn"]) == ["train", "--grad-report", "3", "f.snn"]
    assert optional_values(["train", "f.snn", "--grad-report", "5"]) == ["train", "f.snn", "--grad-report", "5"]


def test_plot_without_grad_report_is_a_usage_error(tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["train", str(ROOT / "specs" / "examples" / "digits_mlp.snn"),
                                      "--out", str(tmp_path / "run"), "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 2 and "--grad-report" in result.output
    assert not (tmp_path / "run").exists()


def test_train_cli_writes_the_report_to_metrics_json_and_plots_it(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from typer.testing import CliRunner

    out, figure = tmp_path / "run", tmp_path / "health.png"
    result = CliRunner().invoke(app, ["train", str(ROOT / "specs" / "examples" / "digits_mlp.snn"), "--epochs", "1",
                                      "--out", str(out), "--grad-report", "2", "--plot", str(figure)])
    assert result.exit_code == 0, result.output
    assert "gradient health, epoch 1" in result.output and "|grad W|" in result.output
    health = json.loads((out / "metrics.json").read_text())["epochs"][0]["grad_report"]
    assert health["batches"] == 2
    assert [la["layer"] for la in health["layers"]] == ["hidden", "out"]
    assert all(la["weight_grad"] > 0 and la["current_grad"] > 0 for la in health["layers"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
