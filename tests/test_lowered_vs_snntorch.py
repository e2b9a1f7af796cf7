"""The std snnTorch-family neurons, lowered, step for step against snnTorch 1.0.0's own modules.

The lowered updates (`LNeuron.updates`, `lets`, `spike`) are evaluated with `snnspec.expr.evaluate`
in float64: `detach(x)` is x numerically, `spiked` is the previous step's spike (0 at the start), and
the spike is heaviside(x) with x = LHS - RHS of `spike when` (`>`: strictly positive). snnTorch runs
with float64 inputs and states, and float64 tensors for beta / alpha / threshold (given as Python
floats, snnTorch would keep them in float32). Its spikes come out as float32, exact for 0 and 1, but
that makes its reset term `reset * threshold` float32 too (a float32 tensor times a 0-dim float64
tensor is float32 under torch's promotion rules), so a threshold such as 0.6 is subtracted as
0.60000002384. The thresholds below are therefore exactly representable in float32 (1, 0.625, 2.5,
...), and the comparison is float64: states to 1e-12 relative, spikes exactly, over 100 random
steps for 16 neurons. (With threshold 0.6 the states differ by ~2.4e-8 per reset: snnTorch's
float32 rounding, not a difference in the update.)

REFERENCE.md (snnTorch) and LANGUAGE.md §7 state the semantics these pin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import snntorch as snn
import torch

import snnspec
from snnspec import ir
from snnspec.expr import evaluate

STD_NEURONS = Path(__file__).resolve().parent.parent / "specs" / "std" / "neurons.snn"
STEPS, WIDTH = 100, 16


@pytest.fixture(scope="module")
def std() -> dict[str, ir.LNeuron]:
    return snnspec.load_lowered(STD_NEURONS).neurons


def f64(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


def run_lowered(neuron: ir.LNeuron, params: dict[str, float], inputs: np.ndarray, keys: list[str]
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every state in `keys` and the spike, [steps, width], from the lowered neuron, one neuron at a time."""
    assert set(params) <= {p.name for p in neuron.params}
    assert neuron.spike is not None
    env: dict[str, float] = {"dt": 1.0}
    for p in neuron.params:
        env[p.name] = params[p.name] if p.name in params else evaluate(p.default, env)
    out = {k: np.zeros(inputs.shape) for k in keys}
    spikes = np.zeros(inputs.shape)
    for j in range(inputs.shape[1]):
        state = {s.var: evaluate(s.value, env) for s in neuron.states}
        spiked = 0.0
        for t in range(inputs.shape[0]):
            scope = {**env, **state, "spiked": spiked, "I": float(inputs[t, j])}
            for let in neuron.lets:
                scope[let.var] = evaluate(let.value, scope)
            state.update({u.var: evaluate(u.value, scope) for u in neuron.updates})
            x = evaluate(neuron.spike.x, {**env, **state})
            spiked = float(x >= 0 if neuron.spike.inclusive else x > 0)
            for k in keys:
                out[k][t, j] = state[k]
            spikes[t, j] = spiked
    return out, spikes


def random_inputs(seed: int, low: float = -0.5, high: float = 1.5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=(STEPS, WIDTH))


def assert_same(ours: np.ndarray, theirs: list[torch.Tensor]) -> None:
    np.testing.assert_allclose(ours, torch.stack(theirs).double().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta, threshold, seed", [(0.9, 1.0, 0), (0.5, 0.625, 1), (0.97, 2.5, 2)])
def test_leaky_matches_snntorch_leaky(std, beta, threshold, seed) -> None:
    """snn.Leaky(beta, threshold), subtract reset, reset_delay=True: mem = beta mem + I - S[t-1] thr."""
    inputs = random_inputs(seed)
    ours, spikes = run_lowered(std["Leaky"], dict(beta=beta, threshold=threshold), inputs, ["mem"])

    lif = snn.Leaky(beta=f64(beta), threshold=f64(threshold))
    mem = torch.zeros(WIDTH, dtype=torch.float64)
    mems, spks = [], []
    for t in range(STEPS):
        spk, mem = lif(torch.from_numpy(inputs[t]), mem)
        mems.append(mem)
        spks.append(spk)
    assert_same(ours["mem"], mems)
    np.testing.assert_array_equal(spikes, torch.stack(spks).numpy())
    assert 0.05 < spikes.mean() < 0.95  # the test exercises the reset


@pytest.mark.parametrize("alpha, beta, threshold, seed", [(0.9, 0.8, 1.0, 3), (0.5, 0.95, 3.0, 4),
                                                         (0.8, 0.3, 0.75, 5)])
def test_synaptic_matches_snntorch_synaptic(std, alpha, beta, threshold, seed) -> None:
    """snn.Synaptic(alpha, beta, threshold): syn = alpha syn + I, mem = beta mem + syn_new - S[t-1] thr."""
    inputs = random_inputs(seed, -0.6, 0.9)
    ours, spikes = run_lowered(std["Synaptic"], dict(alpha=alpha, beta=beta, threshold=threshold), inputs,
                               ["syn", "mem"])

    neuron = snn.Synaptic(alpha=f64(alpha), beta=f64(beta), threshold=f64(threshold))
    syn = torch.zeros(WIDTH, dtype=torch.float64)
    mem = torch.zeros(WIDTH, dtype=torch.float64)
    syns, mems, spks = [], [], []
    for t in range(STEPS):
        spk, syn, mem = neuron(torch.from_numpy(inputs[t]), syn, mem)
        syns.append(syn)
        mems.append(mem)
        spks.append(spk)
    assert_same(ours["syn"], syns)
    assert_same(ours["mem"], mems)
    np.testing.assert_array_equal(spikes, torch.stack(spks).numpy())
    assert 0.05 < spikes.mean() < 0.95


@pytest.mark.parametrize("alpha, beta, threshold, seed", [(0.9, 0.8, 1.0, 6), (0.95, 0.6, 0.5, 7)])
def test_alpha_matches_snntorch_alpha(std, alpha, beta, threshold, seed) -> None:
    """snn.Alpha(alpha, beta, threshold) with its default reset_mechanism="zero" (std Alpha's comment)."""
    inputs = random_inputs(seed, 0.0, 1.0)
    ours, spikes = run_lowered(std["Alpha"], dict(alpha=alpha, beta=beta, threshold=threshold), inputs,
                               ["i_exc", "i_inh", "mem"])

    neuron = snn.Alpha(alpha=f64(alpha), beta=f64(beta), threshold=f64(threshold))
    exc = torch.zeros(WIDTH, dtype=torch.float64)
    inh = torch.zeros(WIDTH, dtype=torch.float64)
    mem = torch.zeros(WIDTH, dtype=torch.float64)
    rec: dict[str, list[torch.Tensor]] = {"i_exc": [], "i_inh": [], "mem": [], "spk": []}
    for t in range(STEPS):
        spk, exc, inh, mem = neuron(torch.from_numpy(inputs[t]), exc, inh, mem)
        for k, v in zip(rec, (exc, inh, mem, spk), strict=True):
            rec[k].append(v)
    for k in ("i_exc", "i_inh", "mem"):
        assert_same(ours[k], rec[k])
    np.testing.assert_array_equal(spikes, torch.stack(rec["spk"]).numpy())
    assert 0.02 < spikes.mean() < 0.95


@pytest.mark.parametrize("beta, threshold, seed", [(0.9, 1.0, 8), (0.6, 0.375, 9)])
def test_lapicque_matches_snntorch_lapicque(std, beta, threshold, seed) -> None:
    """snn.Lapicque(beta, threshold): R = 1, C = 1 / ln(1/beta), forward Euler of the RC circuit."""
    inputs = random_inputs(seed, 0.0, threshold / -np.log(beta))  # input gain -ln(beta): about one spike in 2
    ours, spikes = run_lowered(std["Lapicque"], dict(beta=beta, threshold=threshold), inputs, ["mem"])

    neuron = snn.Lapicque(beta=f64(beta), threshold=f64(threshold))
    mem = torch.zeros(WIDTH, dtype=torch.float64)
    mems, spks = [], []
    for t in range(STEPS):
        spk, mem = neuron(torch.from_numpy(inputs[t]), mem)
        mems.append(mem)
        spks.append(spk)
    assert_same(ours["mem"], mems)
    np.testing.assert_array_equal(spikes, torch.stack(spks).numpy())
    assert 0.05 < spikes.mean() < 0.95
