"""The std surrogates (specs/std/surrogates.snn) against snnTorch 1.0.0 (LANGUAGE.md §3).

For every std surrogate, a tiny neuron using it with non-default hyper-parameters is lowered, and the
gradient the compiler derived (`LSpike.grad`, from `smooth` by symbolic differentiation where the
surrogate gives `smooth`) is evaluated at 100 points in [-2, 2], including 0 and points around each
kink, and compared with
  (a) the closed form snnTorch's backward codes (snntorch/surrogate.py, as in REFERENCE.md), and
  (b) where snnTorch has the function, its actual autograd backward on a float64 tensor.
Both to 1e-12 relative (the backward runs in float64: only its upstream gradient of ones is float32,
and ones are exact).

Deliberate deviations, pinned as such:
  - `triangular`: snnTorch's `Triangular.backward` is +threshold for x < 0 and -threshold for x >= 0,
    a sign flip, not a triangle. Ours is the symmetric unit-area triangle max(1 - |x|/w, 0) / w; it is
    tested against that closed form, and against snnTorch only to show where they differ.
  - `gaussian`: snnTorch 1.0.0 has no such function; ours is the normal density with std `sigma`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from snntorch import surrogate as sts

import snnspec
from snnspec import ir
from snnspec.expr import evaluate

NEURON = """
neuron N {
    param threshold = 1
    state mem = 0
    mem <- 0.9 * mem + I - detach(spiked) * threshold
    spike when mem > threshold SURROGATE
}
"""


def lower_spike(clause: str, extra: str = "") -> ir.LSpike:
    spec = snnspec.load_lowered(text=extra + NEURON.replace("SURROGATE", clause), name="n.snn")
    spike = spec.neurons["N"].spike
    assert spike is not None
    return spike


def derived(spike: ir.LSpike, xs: np.ndarray) -> np.ndarray:
    return np.array([evaluate(spike.grad, {spike.grad_var: float(x)}) for x in xs])


def points(*special: float) -> np.ndarray:
    """100 distinct points in [-2, 2]: the `special` ones (kinks and their neighbours, 0) and an even grid."""
    special_set = {0.0, 1e-9, -1e-9, *special}
    grid = [x for x in np.linspace(-2.0, 2.0, 100) if all(abs(x - s) > 1e-6 for s in special_set)]
    xs = np.array(sorted(special_set | set(grid[: 100 - len(special_set)])))
    assert len(xs) == 100 and xs.min() >= -2 and xs.max() <= 2
    return xs


def snntorch_backward(fn: Callable[[torch.Tensor], torch.Tensor], xs: np.ndarray) -> np.ndarray:
    """d(spike)/dx as snnTorch's autograd computes it: backward of ones on a float64 leaf."""
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    out = fn(x)
    out.backward(torch.ones_like(out))
    assert x.grad is not None and x.grad.dtype == torch.float64
    return x.grad.numpy()


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


# (clause, snnTorch closed form as coded, snnTorch function or None, special points)
CASES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], Callable | None, tuple[float, ...]]] = {
    "atan": (
        "surrogate atan(alpha = 3.5)",
        lambda x: 3.5 / 2 / (1 + (math.pi / 2 * 3.5 * x) ** 2),
        sts.atan(alpha=3.5), ()),
    "fast_sigmoid": (
        "surrogate fast_sigmoid(slope = 7.5)",
        lambda x: 1 / (7.5 * np.abs(x) + 1.0) ** 2,
        sts.fast_sigmoid(slope=7.5), ()),
    "sigmoid": (
        "surrogate sigmoid(slope = 4)",
        lambda x: 4 * np.exp(-4 * x) / (np.exp(-4 * x) + 1) ** 2,
        sts.sigmoid(slope=4), ()),
    "spike_rate_escape": (
        "surrogate spike_rate_escape(beta = 2.5, slope = 3)",
        lambda x: 3 * np.exp(-2.5 * np.abs(x - 1)),
        sts.spike_rate_escape(beta=2.5, slope=3), (1.0, 1 - 1e-9, 1 + 1e-9)),
    "straight_through": (
        "surrogate straight_through",
        lambda x: np.ones_like(x),
        sts.straight_through_estimator(), ()),
    "triangular": (
        "surrogate triangular(width = 0.7)",
        lambda x: np.maximum(1 - np.abs(x) / 0.7, 0) / 0.7,
        None, (0.7, -0.7, 0.7 - 1e-9, 0.7 + 1e-9, -0.7 + 1e-9, -0.7 - 1e-9)),
    "gaussian": (
        "surrogate gaussian(sigma = 0.3)",
        lambda x: np.exp(-x**2 / (2 * 0.3**2)) / (0.3 * math.sqrt(2 * math.pi)),
        None, ()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_std_surrogate_matches_snntorch_closed_form(name: str) -> None:
    clause, closed_form, fn, special = CASES[name]
    spike = lower_spike(clause)
    assert spike.surrogate == name
    xs = points(*special)
    got = derived(spike, xs)
    assert_close(got, closed_form(xs))
    if fn is not None:
        assert_close(got, snntorch_backward(fn, xs))


def test_std_surrogates_are_all_covered_and_smooth_ones_are_derived() -> None:
    """Every std surrogate is tested above, and those written as `smooth` had their gradient derived
    by the compiler (so the tests above check the symbolic differentiation, not a copied formula)."""
    spec = snnspec.load(text=NEURON.replace("SURROGATE", ""), name="n.snn")
    assert set(spec.surrogates) == set(CASES)
    forms = {name: s.form for name, s in spec.surrogates.items()}
    assert {n for n, f in forms.items() if f == "smooth"} == {"atan", "fast_sigmoid", "sigmoid", "gaussian"}


def test_default_surrogate_is_atan_alpha_2() -> None:
    """No `surrogate` clause: atan(alpha = 2), snnTorch's default for every neuron (LANGUAGE.md §2)."""
    spike = lower_spike("")
    assert spike.surrogate == "atan"
    xs = points()
    got = derived(spike, xs)
    assert_close(got, 2 / 2 / (1 + (math.pi / 2 * 2 * xs) ** 2))
    assert_close(got, snntorch_backward(sts.atan(), xs))
    assert_close(got, derived(lower_spike("surrogate atan"), xs))


def test_default_hyper_parameters_match_snntorch_defaults() -> None:
    """Our defaults are snnTorch's: fast_sigmoid(25), sigmoid(25), spike_rate_escape(1, 25)."""
    xs = points(1.0)
    for clause, fn in (("surrogate fast_sigmoid", sts.fast_sigmoid()), ("surrogate sigmoid", sts.sigmoid()),
                       ("surrogate spike_rate_escape", sts.spike_rate_escape())):
        assert_close(derived(lower_spike(clause), xs), snntorch_backward(fn, xs))


def test_sigmoid_gradient_stays_finite_far_from_threshold() -> None:
    """snnTorch's coded form exp(-k x) / (exp(-k x) + 1)^2 overflows for k x < -710; the derived
    k sigmoid(k x) sigmoid(-k x) does not, and tends to 0 on both sides. (The form
    sigmoid(k x) (1 - sigmoid(k x)) would cancel to exactly 0 for k x > 37 in float64, and lose
    relative precision well before: the 1e-12 comparisons above at slope 25 would fail.)"""
    spike = lower_spike("surrogate sigmoid")
    for x in (-50.0, -30.0, 30.0, 50.0):
        value = evaluate(spike.grad, {spike.grad_var: x})
        assert math.isfinite(value) and 0 <= value < 1e-200


def test_triangular_deviates_from_snntorch_on_purpose() -> None:
    """snnTorch's `triangular(threshold)` backward is +threshold below 0 and -threshold at and above 0
    (a sign flip, negative above threshold); ours is the symmetric triangle. Pinned so that a change in
    either is noticed: they agree nowhere in (-w, w) except by coincidence, and ours is never negative."""
    xs = points(0.7, -0.7)
    theirs = snntorch_backward(sts.triangular(threshold=1), xs)
    np.testing.assert_array_equal(theirs, np.where(xs < 0, 1.0, -1.0))
    ours = derived(lower_spike("surrogate triangular(width = 1)"), xs)
    assert np.all(ours >= 0)
    assert ours[np.argmin(np.abs(xs))] == pytest.approx(1.0)
    assert np.trapezoid(ours, xs) == pytest.approx(1.0, rel=1e-3)  # unit area


def test_user_smooth_surrogate_is_differentiated() -> None:
    """A surrogate written in the spec with `smooth` gets d/dx of it, hyper-parameters substituted."""
    extra = "surrogate soft(x; k = 1) { smooth = tanh(k * x) / 2 }\n"
    spike = lower_spike("surrogate soft(k = 3)", extra)
    xs = points()
    assert_close(derived(spike, xs), 3 / 2 * (1 - np.tanh(3 * xs) ** 2))
