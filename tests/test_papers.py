"""The papers' methods as written in specs/examples/: checked against their closed forms."""

from __future__ import annotations

from pathlib import Path

import pytest

import snnspec

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
LEE = ROOT / "specs" / "examples" / "lee2016.snn"


@pytest.fixture(scope="module")
def lee():
    return snnspec.compile(LEE)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("beta", [1.0, 0.9])
def test_lee_gradient_is_the_pass_through_normalised_by_the_threshold(lee, fused, beta):
    """Lee et al. 2016: d (spike count) / d (input at step s) is 1 / threshold for an integrate-and-fire
    neuron with subtract reset; with the reset in the graph and a pass-through of 1 / threshold,
    d mem[t] / d mem[t-1] = beta - 1, so the input at step s reaches the count as
    (1 / threshold) * sum_k (beta - 1)^k over the remaining steps. A detached reset would give
    (1 / threshold) * sum_k beta^k instead (T - s at beta = 1)."""
    steps, threshold = 40, 2.0
    neuron = lee.LeeLIF(1, beta=beta, threshold=threshold).double()
    neuron.kernels = None if fused else "plain"
    current = torch.full((steps, 1, 1), 0.5, dtype=torch.float64, requires_grad=True)
    spikes, _state, record = neuron.run(current, record=True)
    assert bool((record.mem > 0).all())  # the pass-through holds at every step
    spikes.sum().backward()
    expected = torch.tensor([sum((beta - 1) ** k for k in range(steps - s)) / threshold for s in range(steps)],
                            dtype=torch.float64)
    torch.testing.assert_close(current.grad.reshape(-1), expected)
    if beta == 1.0:  # and the count itself is the input's sum over the threshold, as the paper's rate
        assert spikes.sum().item() == pytest.approx(steps * 0.5 / threshold, abs=1)


def test_lee_gradient_is_zero_where_the_membrane_is_negative(lee):
    neuron = lee.LeeLIF(1, beta=0.9, threshold=1.0).double()
    current = torch.full((5, 1, 1), -0.3, dtype=torch.float64, requires_grad=True)
    spikes, _state, _ = neuron.run(current)
    spikes.sum().backward()
    assert spikes.sum().item() == 0 and bool((current.grad == 0).all())


def test_lee_networks_differ_only_in_their_input(lee):
    pim, sac = lee.LeePIMNIST(), lee.LeeSaccades()
    assert [p.shape for p in pim.parameters()][1:] == [p.shape for p in sac.parameters()][1:]
    assert pim(torch.rand(3, 784)).out_spike.shape == (3, 10)
    assert sac((torch.rand(30, 3, 2, 34, 34) < 0.1).float()).out_spike.shape == (3, 10)
