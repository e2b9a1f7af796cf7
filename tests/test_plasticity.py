"""Plasticity (LANGUAGE.md §4): the standard rules against closed forms, and plastic paths in networks.

Rule tests drive a rule step by step with hand-made spike trains through a *driver*:

    driver(rule, params, dt, pre [T, B, n_pre], post [T, B, n_post], w0 [n_post, n_pre],
           modulators {name: [T, B]} | None) -> the weight after every step, [T + 1, n_post, n_pre]

(numpy float64 in and out, SI units, rule params by their spec names). `DRIVERS` holds one per
backend (torch; JAX, in float64, when jax is installed) and every closed-form test below runs on
each (the expected values are plain numpy, independent of any backend).

Semantics pinned here (std/rules.snn, LANGUAGE.md §4): within a step the traces first decay exactly
(by exp(-dt/tau)), then `on pre` runs, then `on post`, then `clip`; `w` is shared by the batch and
its changes are averaged over it. So for one pre and one post spike, k = Δt/dt steps apart
(Δt = t_post - t_pre), with soft = 0 and w away from the bounds:
    Δt > 0:  Δw = a_plus exp(-Δt / tau_pre)       (post reads x_pre, decayed k times)
    Δt < 0:  Δw = -a_minus exp(Δt / tau_post)     (pre reads x_post, decayed k times)
    Δt = 0:  Δw = a_plus                          (`on pre` first: x_pre is already 1 when `on post`
                                                   reads it, x_post still 0 when `on pre` reads it)
With soft = s the two branches are scaled by (1 - s) + s (w_max - w) and (1 - s) + s (w - w_min).
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import snnspec

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # the JAX backend is optional
    jax = None

ROOT = Path(__file__).resolve().parent.parent
STD_RULES = ROOT / "specs" / "std" / "rules.snn"
MS = 1e-3


# -- drivers -------------------------------------------------------------------------------------

@contextlib.contextmanager
def float64():
    """Build modules in float64 (rule and neuron params are made in the default dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@functools.cache
def torch_rules(path: Path = STD_RULES):
    return snnspec.compile(path)


def torch_driver(rule: str, params: dict, dt: float, pre: np.ndarray, post: np.ndarray, w0: np.ndarray,
                 modulators: dict[str, np.ndarray] | None = None, rules: Path = STD_RULES) -> np.ndarray:
    with float64():
        module = getattr(torch_rules(rules), rule)(dt=dt, **params)
    steps, batch, n_pre = pre.shape
    w = torch.tensor(w0, dtype=torch.float64)
    state = module.init_state(batch, post.shape[2], n_pre, w)
    pre_t, post_t = torch.tensor(pre, dtype=torch.float64), torch.tensor(post, dtype=torch.float64)
    mods = {k: torch.tensor(v, dtype=torch.float64) for k, v in (modulators or {}).items()}
    out = [w.numpy().copy()]
    for t in range(steps):
        state, w = module.step(state, w, pre_t[t], post_t[t], **{k: v[t] for k, v in mods.items()})
        out.append(w.numpy().copy())
    return np.stack(out)


@contextlib.contextmanager
def jax_float64():
    """JAX in float64 for the duration (as it was before, afterwards: no other test sees it)."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


@functools.cache
def jax_rules(path: Path = STD_RULES):
    return snnspec.compile(path, backend="jax")


def jax_driver(rule: str, params: dict, dt: float, pre: np.ndarray, post: np.ndarray, w0: np.ndarray,
               modulators: dict[str, np.ndarray] | None = None, rules: Path = STD_RULES) -> np.ndarray:
    """The rule's `step` scanned over the trains (`lax.scan`), in float64."""
    with jax_float64():
        R = getattr(jax_rules(rules), rule)
        p = R.params(params, dt=dt)
        steps, batch, n_pre = pre.shape
        state = R.init_state(p, batch, post.shape[2], n_pre, dtype=jnp.float64)
        mods = {k: jnp.asarray(v, jnp.float64) for k, v in (modulators or {}).items()}

        def body(carry, xs):
            state, w = carry
            pre_t, post_t, mods_t = xs
            state, w = R.step(p, state, w, pre_t, post_t, **mods_t, dt=dt)
            return (state, w), w

        xs = (jnp.asarray(pre, jnp.float64), jnp.asarray(post, jnp.float64), mods)
        _, ws = jax.lax.scan(body, (state, jnp.asarray(w0, jnp.float64)), xs)
        return np.concatenate([w0[None], np.asarray(ws)])


DRIVERS = {"torch": torch_driver, **({"jax": jax_driver} if jax is not None else {})}
BACKENDS = sorted(DRIVERS)


# -- closed forms --------------------------------------------------------------------------------

def stdp_pair_dw(lag_s: np.ndarray, w0: float, a_plus: float, a_minus: float, tau_pre: float, tau_post: float,
                 w_min: float, w_max: float, soft: float) -> np.ndarray:
    """Δw of one pre/post pair with Δt = t_post - t_pre (Δt = 0 counts as pre before post)."""
    pot = a_plus * np.exp(-np.abs(lag_s) / tau_pre) * ((1 - soft) + soft * (w_max - w0))
    dep = -a_minus * np.exp(-np.abs(lag_s) / tau_post) * ((1 - soft) + soft * (w0 - w_min))
    return np.where(lag_s >= 0, pot, dep)


def _geo(q: float, n: float) -> float:
    """sum_{k < n} q^k."""
    return (1 - q ** n) / (1 - q)


def _sum_geo(q: float, s: int, n: int) -> float:
    """sum_{m < n} geo(q, m + s), in closed form."""
    return (n - q ** s * _geo(q, n)) / (1 - q)


def _sum_geo2(q1: float, s1: int, q2: float, s2: int, n: int) -> float:
    """sum_{m < n} geo(q1, m + s1) * geo(q2, m + s2), in closed form."""
    return (n - q1 ** s1 * _geo(q1, n) - q2 ** s2 * _geo(q2, n) + q1 ** s1 * q2 ** s2 * _geo(q1 * q2, n)) / (
        (1 - q1) * (1 - q2))


def triplet_pairing_dw(n: int, period: float, lag: float, p: dict) -> tuple[float, float]:
    """Pfister & Gerstner (2006), all-to-all triplet rule, pairing protocol from rest: n pairs, one
    every `period` s, the post spike `lag` s after the pre spike (lag < 0: before it), |lag| < period.

    Returns (total Δw of the n pairings, steady-state Δw per pairing for n -> inf). Each spike sees the
    sum of the earlier spikes' exponentials, geometric in the pairing index m:
      lag > 0:  r1(post_m) = e^{-d/tau+} geo(q+, m+1),   o1(pre_m) = e^{d/tau-} q- geo(q-, m)
      lag < 0:  r1(post_m) = e^{d/tau+} q+ geo(q+, m),   o1(pre_m) = e^{-d/tau-} geo(q-, m+1)
      both:     o2(post_m - eps) = qy geo(qy, m),        r2(pre_m - eps) = qx geo(qx, m)
    with d = |lag|, q = exp(-period / tau); Δw_m = r1 (a2+ + a3+ o2) - o1 (a2- + a3- r2), and the sum
    over m of these products of geometric sums is again closed form. All spike times are multiples of
    dt in the test, and the traces decay exactly per step, so discrete time gives these values exactly.
    """
    qp, qm, qx, qy = (math.exp(-period / p[k]) for k in ("tau_plus", "tau_minus", "tau_x", "tau_y"))
    d = abs(lag)
    a2p, a3p, a2m, a3m = p["a2_plus"], p["a3_plus"], p["a2_minus"], p["a3_minus"]
    if lag > 0:
        cp, sp = math.exp(-d / p["tau_plus"]), 1  # r1 = cp * geo(qp, m + sp)
        cm, sm = math.exp(d / p["tau_minus"]) * qm, 0  # o1 = cm * geo(qm, m + sm)
    else:
        cp, sp = math.exp(d / p["tau_plus"]) * qp, 0
        cm, sm = math.exp(-d / p["tau_minus"]), 1
    pot = cp * (a2p * _sum_geo(qp, sp, n) + a3p * qy * _sum_geo2(qp, sp, qy, 0, n))
    dep = cm * (a2m * _sum_geo(qm, sm, n) + a3m * qx * _sum_geo2(qm, sm, qx, 0, n))
    steady = cp / (1 - qp) * (a2p + a3p * qy / (1 - qy)) - cm / (1 - qm) * (a2m + a3m * qx / (1 - qx))
    return pot - dep, steady


TRIPLET_MINIMAL = dict(tau_plus=16.8 * MS, tau_minus=33.7 * MS, tau_x=101 * MS, tau_y=114 * MS,
                       a2_plus=0.0, a3_plus=6.5e-3, a2_minus=7.1e-3, a3_minus=0.0)  # the rule's defaults
# every term non-zero (the minimal model leaves a2_plus and a3_minus at 0, so r2 is never read)
TRIPLET_ALL_TERMS = dict(tau_plus=16.8 * MS, tau_minus=33.7 * MS, tau_x=101 * MS, tau_y=125 * MS,
                         a2_plus=3e-3, a3_plus=6.2e-3, a2_minus=7e-3, a3_minus=2.3e-3)
FREQUENCIES = (1, 5, 10, 20, 40, 50)  # Hz: Sjostrom et al. (2001) paired at 0.1-50 Hz


def triplet_protocol(freqs=FREQUENCIES, lags_ms=(10, -10), seconds: float = 5.0, dt: float = 1 * MS):
    """Spike trains for every (frequency, lag) at once: pair i is pre neuron i and post neuron i (only
    the diagonal w[i, i] is read; the other synapses see unrelated trains). Returns pre, post,
    [(freq, lag_s, pairings)], and for each pair the step of its last spike."""
    steps = round(seconds / dt)
    cases = [(f, lag) for f in freqs for lag in lags_ms]
    pre = np.zeros((steps, 1, len(cases)))
    post = np.zeros((steps, 1, len(cases)))
    out, last = [], []
    for i, (f, lag) in enumerate(cases):
        period, k = round(1 / f / dt), round(abs(lag) * MS / dt)
        n = (steps - 1 - k) // period + 1
        first, second = (pre, post) if lag > 0 else (post, pre)
        for m in range(n):
            first[m * period, 0, i] = 1
            second[m * period + k, 0, i] = 1
        out.append((f, lag * MS, n))
        last.append(((n - 2) * period + k, (n - 1) * period + k))  # ends of the last two pairings
    return pre, post, out, last


# -- STDP ----------------------------------------------------------------------------------------

STDP_PARAMS = dict(a_plus=0.01, a_minus=0.012, tau_pre=17 * MS, tau_post=34 * MS, w_min=-0.25, w_max=0.75)


def stdp_window_run(backend: str, dt: float, soft: float):
    """One post spike at 50 ms; pre neuron j spikes once, Δt = -50 ms ... 50 ms (one synapse per Δt)."""
    k = round(50 * MS / dt)
    lags = np.arange(-k, k + 1)  # Δt / dt = t_post - t_pre
    pre = np.zeros((2 * k + 1, 1, len(lags)))
    post = np.zeros((2 * k + 1, 1, 1))
    post[k, 0, 0] = 1
    pre[k - lags, 0, np.arange(len(lags))] = 1
    w0 = 0.3
    ws = DRIVERS[backend]("STDP", {**STDP_PARAMS, "soft": soft}, dt, pre, post, np.full((1, len(lags)), w0))
    expected = stdp_pair_dw(lags * dt, w0, **STDP_PARAMS, soft=soft)
    return lags, ws, w0, expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("soft", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("dt_ms", [1.0, 0.5])
def test_stdp_window_matches_closed_form(backend, dt_ms, soft):
    lags, ws, w0, expected = stdp_window_run(backend, dt_ms * MS, soft)
    dw = ws[-1, 0] - w0
    rel = np.abs(dw - expected) / np.abs(expected)
    assert rel.max() < 1e-6, f"max relative error {rel.max():.2e} at Δt = {lags[rel.argmax()] * dt_ms} ms"
    # and each weight moves exactly once: at the step of the later spike of its pair
    k = (len(lags) - 1) // 2
    later = np.maximum(k, k - lags)  # step of the later spike (post at k, pre at k - lag)
    for j in range(len(lags)):
        trace = ws[1:, 0, j]
        assert np.all(trace[: later[j]] == w0) and np.all(trace[later[j]:] == trace[-1]), j


@pytest.mark.parametrize("backend", BACKENDS)
def test_stdp_same_step_pair_is_pre_before_post(backend):
    """Δt = 0: `on pre` runs first, so the pair potentiates by exactly a_plus (soft = 0); a post spike
    in the step before a pre spike depresses by a_minus exp(-dt / tau_post)."""
    dt = 1 * MS
    pre = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # pre 0 at step 0, pre 1 at step 1
    post = np.array([[[1.0]], [[0.0]]])  # post at step 0
    ws = DRIVERS[backend]("STDP", {**STDP_PARAMS, "soft": 0.0}, dt, pre, post, np.full((1, 2), 0.3))
    assert ws[-1, 0, 0] - 0.3 == pytest.approx(STDP_PARAMS["a_plus"], rel=1e-12)
    assert ws[-1, 0, 1] - 0.3 == pytest.approx(-STDP_PARAMS["a_minus"] * math.exp(-dt / STDP_PARAMS["tau_post"]),
                                               rel=1e-12)


# -- triplet STDP --------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("params", [TRIPLET_MINIMAL, TRIPLET_ALL_TERMS], ids=["minimal", "all_terms"])
def test_triplet_pairing_protocol_matches_closed_form(backend, params):
    """Pairings at 1-50 Hz with Δt = +10 ms and -10 ms, run through the rule for 5 s (5 to 250
    pairings): the total change and the change of the last pairing (the steady state) against
    `triplet_pairing_dw`. The weight starts at 10 with w_max = 1000, so the clip never acts."""
    dt = 1 * MS
    pre, post, cases, last = triplet_protocol(dt=dt)
    n = len(cases)
    ws = DRIVERS[backend]("TripletSTDP", {**params, "w_max": 1000.0}, dt, pre, post, np.full((n, n), 10.0))
    for i, (f, lag, pairs) in enumerate(cases):
        total, steady = triplet_pairing_dw(pairs, 1 / f, lag, params)
        got = ws[-1, i, i] - 10.0
        assert got == pytest.approx(total, rel=1e-9, abs=1e-13), (f, lag, pairs)
        before, end = last[i]
        got_last = ws[end + 1, i, i] - ws[before + 1, i, i]  # the last pairing alone
        assert got_last == pytest.approx(steady, rel=1e-6), (f, lag)


def test_triplet_closed_form_is_the_frequency_dependence_of_the_paper():
    """Sanity of the closed form itself (minimal visual-cortex model), as in Sjostrom et al. (2001) and
    Pfister & Gerstner (2006): at 1 Hz post-before-pre depresses and pre-before-post does (almost)
    nothing (a2_plus = 0: potentiation needs a recent post spike), at 50 Hz both potentiate; and the
    mean change per pairing of a long protocol approaches the steady state."""
    per = {(f, lag): triplet_pairing_dw(60, 1 / f, lag * MS, TRIPLET_MINIMAL)[1] for f in (1, 50) for lag in (10, -10)}
    assert per[(1, -10)] < -1e-3 and abs(per[(1, 10)]) < 1e-3 * abs(per[(1, -10)])
    assert per[(50, 10)] > 1e-3 and per[(50, -10)] > 1e-3
    total, steady = triplet_pairing_dw(2000, 1 / 20, 10 * MS, TRIPLET_MINIMAL)
    assert total / 2000 == pytest.approx(steady, rel=1e-2)


# -- reward-modulated STDP -----------------------------------------------------------------------

RSTDP_PARAMS = dict(a_plus=1.0, a_minus=1.5, tau_pre=20 * MS, tau_post=20 * MS, tau_e=200 * MS, lr=0.01,
                    w_min=0.0, w_max=1.0)


def random_trains(rng: np.random.Generator, steps: int, batch: int, n_pre: int, n_post: int, p: float = 0.1):
    return ((rng.random((steps, batch, n_pre)) < p).astype(float),
            (rng.random((steps, batch, n_post)) < p).astype(float))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rstdp_without_reward_leaves_weights_unchanged(backend):
    rng = np.random.default_rng(0)
    pre, post = random_trains(rng, 300, 3, 5, 4)
    w0 = rng.uniform(0.2, 0.8, (4, 5))
    ws = DRIVERS[backend]("RSTDP", RSTDP_PARAMS, 1 * MS, pre, post, w0, {"reward": np.zeros((300, 3))})
    assert np.array_equal(ws[-1], w0)
    ws = DRIVERS[backend]("RSTDP", RSTDP_PARAMS, 1 * MS, pre, post, w0, {"reward": np.ones((300, 3))})
    assert np.abs(ws[-1] - w0).max() > 1e-3  # the same trains do change w once rewarded


@pytest.mark.parametrize("backend", BACKENDS)
def test_rstdp_single_pair_closed_form(backend):
    """Post spike at step P; pre 0 at P - k (e = +a_plus e^{-k dt/tau_pre}), pre 1 at P + k
    (e = -a_minus e^{-k dt/tau_post}). Under reward 1 each later step moves w by
    lr e dt / tau_e (e of the step before), and e decays by q = exp(-dt / tau_e): after the pairing's
    step s, Δw = lr e0 (dt / tau_e) (1 - q^(T-1-s)) / (1 - q)."""
    dt, steps, p, k = 1 * MS, 400, 40, 7
    pre = np.zeros((steps, 1, 2))
    post = np.zeros((steps, 1, 1))
    post[p, 0, 0] = pre[p - k, 0, 0] = pre[p + k, 0, 1] = 1
    ws = DRIVERS[backend]("RSTDP", RSTDP_PARAMS, dt, pre, post, np.full((1, 2), 0.5), {"reward": np.ones((steps, 1))})
    q = math.exp(-dt / RSTDP_PARAMS["tau_e"])
    gain = RSTDP_PARAMS["lr"] * dt / RSTDP_PARAMS["tau_e"]
    e_pot = RSTDP_PARAMS["a_plus"] * math.exp(-k * dt / RSTDP_PARAMS["tau_pre"])
    e_dep = -RSTDP_PARAMS["a_minus"] * math.exp(-k * dt / RSTDP_PARAMS["tau_post"])
    assert ws[-1, 0, 0] - 0.5 == pytest.approx(gain * e_pot * _geo(q, steps - 1 - p), rel=1e-9)
    assert ws[-1, 0, 1] - 0.5 == pytest.approx(gain * e_dep * _geo(q, steps - 1 - (p + k)), rel=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rstdp_is_stdp_accumulated_through_the_eligibility_trace(backend):
    """Random trains, per-item rewards that vary in time: RSTDP's w equals the STDP increments of each
    batch item (the STDP rule with RSTDP's amplitudes, additive, bounds out of reach) filtered by the
    eligibility trace, e_b[t] = q e_b[t-1] + ΔSTDP_b[t], and applied as
    w[t] = w[t-1] + lr dt / tau_e mean_b(reward_b[t] e_b[t-1])."""
    rng = np.random.default_rng(1)
    dt, steps, batch = 1 * MS, 300, 2
    pre, post = random_trains(rng, steps, batch, 5, 4, p=0.08)
    reward = rng.choice([0.0, 1.0, 2.5], size=(steps, batch))
    w0 = np.full((4, 5), 0.5)
    p = RSTDP_PARAMS
    ws = DRIVERS[backend]("RSTDP", p, dt, pre, post, w0, {"reward": reward})
    stdp = {k: p[k] for k in ("a_plus", "a_minus", "tau_pre", "tau_post")}
    stdp.update(w_min=-1e9, w_max=1e9, soft=0.0)
    increments = [np.diff(DRIVERS[backend]("STDP", stdp, dt, pre[:, [b]], post[:, [b]], w0), axis=0)
                  for b in range(batch)]  # [T, post, pre] each
    q, gain = math.exp(-dt / p["tau_e"]), p["lr"] * dt / p["tau_e"]
    e = np.zeros((batch, 4, 5))
    w = w0.copy()
    for t in range(steps):
        w = w + gain * np.mean(reward[t][:, None, None] * e, axis=0)
        e = q * e + np.stack([inc[t] for inc in increments])
        assert ws[t + 1] == pytest.approx(w, rel=1e-9, abs=1e-14), t
    assert np.abs(w - w0).max() > 1e-3


# -- clip and batch averaging --------------------------------------------------------------------

CLIP_CASES = {
    "STDP": (dict(a_plus=0.5, a_minus=0.5, w_min=-0.2, w_max=0.6, soft=0.0), None, (-0.2, 0.6)),
    "TripletSTDP": (dict(a2_plus=0.5, a3_plus=0.5, a2_minus=0.5, a3_minus=0.5, w_max=0.6), None, (0.0, 0.6)),
    "RSTDP": (dict(lr=50.0, w_min=0.1, w_max=0.6), "reward", (0.1, 0.6)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", sorted(CLIP_CASES))
def test_clip_holds_at_every_step(backend, rule):
    params, modulator, (low, high) = CLIP_CASES[rule]
    rng = np.random.default_rng(2)
    pre, post = random_trains(rng, 200, 2, 6, 5, p=0.3)
    mods = {modulator: np.where(np.arange(200) % 40 < 20, 1.0, -1.0)[:, None].repeat(2, 1)} if modulator else None
    ws = DRIVERS[backend](rule, params, 1 * MS, pre, post, rng.uniform(low, high, (5, 6)), mods)
    assert ws.min() >= low and ws.max() <= high
    assert (ws == low).any() and (ws == high).any()  # both bounds are reached, and held exactly


PIN = """
rule Pin {
    param c = 0.25
    param a = 0.1
    pre state x_pre = 0
    x_pre <- 0.5
    w <- c
    on pre { w += a * x_pre }
}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_constant_assigned_to_w_or_a_state_keeps_their_shape(backend, tmp_path):
    """`w <- c` and `x_pre <- 0.5` (numbers and params only) give every synapse / neuron the value,
    not one scalar: `on pre` then reads x_pre per presynaptic neuron. Pre 0 spikes at every step in
    both batch items, pre 1 in one of them, pre 2 never: w = c + a * 0.5 * (share of items)."""
    rules = tmp_path / "pin.snn"
    rules.write_text(PIN)
    steps, batch = 3, 2
    pre = np.zeros((steps, batch, 3))
    pre[:, :, 0] = 1
    pre[:, 0, 1] = 1
    ws = DRIVERS[backend]("Pin", {}, 1 * MS, pre, np.zeros((steps, batch, 2)), np.zeros((2, 3)), rules=rules)
    assert ws.shape == (steps + 1, 2, 3)
    np.testing.assert_allclose(ws[1:], np.broadcast_to([0.3, 0.275, 0.25], (steps, 2, 3)), rtol=1e-15)


RENAMED = """
rule Renamed {
    param lambda = 0.5
    param _rate = 2
    param b = exp(lambda) * sqrt(_rate)
    post state x_post = 0
    on post { x_post += 1; w += b * x_post }
}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_default_reads_a_param_renamed_in_python_as_an_array(backend, tmp_path):
    """`lambda` (a keyword) and `_rate` (a leading `_`) are `lambda_` and `x_rate` in Python; a
    default that reads them prints the backend's array functions, as the neurons' do (torch once
    decided by the Python names and printed `math.exp`). One post spike: w = b = e^0.3 * sqrt(2)."""
    rules = tmp_path / "renamed.snn"
    rules.write_text(RENAMED)
    fn = {"torch": "torch", "jax": "jnp"}[backend]
    assert f"{fn}.exp(lambda_) * {fn}.sqrt(x_rate)" in snnspec.generate(rules, backend=backend)
    post = np.zeros((1, 1, 2))
    post[0, 0, 0] = 1
    ws = DRIVERS[backend]("Renamed", {"lambda_": 0.3}, 1 * MS, np.zeros((1, 1, 3)), post, np.zeros((2, 3)),
                          rules=rules)
    np.testing.assert_allclose(ws[1], [[math.exp(0.3) * math.sqrt(2)] * 3, [0.0] * 3], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["STDP", "TripletSTDP", "RSTDP"])
def test_identical_batch_items_give_the_change_of_one(backend, rule):
    rng = np.random.default_rng(3)
    pre, post = random_trains(rng, 150, 1, 5, 4, p=0.15)
    w0 = rng.uniform(0.3, 0.7, (4, 5))
    params = {"STDP": dict(soft=1.0), "TripletSTDP": {}, "RSTDP": dict(lr=1.0)}[rule]
    mods = (lambda b: {"reward": np.ones((150, b))}) if rule == "RSTDP" else (lambda b: None)
    one = DRIVERS[backend](rule, params, 1 * MS, pre, post, w0, mods(1))
    two = DRIVERS[backend](rule, params, 1 * MS, pre.repeat(2, 1), post.repeat(2, 1), w0, mods(2))
    if backend == "torch":
        assert np.array_equal(one, two)
    else:  # XLA compiles each batch size on its own and may fuse a * b + c into one rounding: an ulp apart
        np.testing.assert_allclose(two, one, rtol=0, atol=1e-15)
    assert np.abs(one[-1] - w0).max() > 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_different_batch_items_give_the_mean_change(backend):
    """Additive STDP, bounds out of reach: every step's change depends on the traces only, so the
    change of a batch is the mean of the items' changes (exactly, to rounding). With weight-dependent
    updates (soft bounds) the mean holds step by step, from the shared weight."""
    rng = np.random.default_rng(4)
    pre, post = random_trains(rng, 200, 3, 5, 4, p=0.15)
    w0 = np.full((4, 5), 0.5)
    params = dict(w_min=-1e9, w_max=1e9, soft=0.0)
    batch = DRIVERS[backend]("STDP", params, 1 * MS, pre, post, w0)[-1] - w0
    alone = [DRIVERS[backend]("STDP", params, 1 * MS, pre[:, [b]], post[:, [b]], w0)[-1] - w0 for b in range(3)]
    assert batch == pytest.approx(np.mean(alone, axis=0), rel=1e-12, abs=1e-15)
    assert np.abs(alone[0] - alone[1]).max() > 1e-3
    # RSTDP with per-item rewards: identical items rewarded [1, 0] move w half as far as one rewarded 1
    pre1, post1 = pre[:, [0]], post[:, [0]]
    half = DRIVERS[backend]("RSTDP", RSTDP_PARAMS, 1 * MS, pre1.repeat(2, 1), post1.repeat(2, 1), w0,
                            {"reward": np.tile([1.0, 0.0], (200, 1))})[-1] - w0
    full = DRIVERS[backend]("RSTDP", RSTDP_PARAMS, 1 * MS, pre1, post1, w0, {"reward": np.ones((200, 1))})[-1] - w0
    assert half == pytest.approx(full / 2, rel=1e-12, abs=1e-15)


def test_rule_modulator_may_be_a_scalar():
    with float64():
        rule = torch_rules().RSTDP(dt=1 * MS)
    w = torch.full((3, 4), 0.5)
    state = rule.init_state(2, 3, 4, w)
    pre, post = torch.ones(2, 4), torch.ones(2, 3)
    state, _ = rule.step(state, w, pre, post, 1.0)  # eligibility builds up
    results = [rule.step(state, w, pre, post, r)[1] for r in (1.0, torch.tensor(1.0), torch.ones(1), torch.ones(2))]
    for other in results[1:]:
        assert torch.equal(results[0], other)
    assert not torch.equal(results[0], w)


# -- plastic paths in generated networks -----------------------------------------------------------

ONLINE = """
from "std/neurons.snn" import LIF
from "std/rules.snn" import STDP, RSTDP

network Online {
    dt = 1 ms
    input x[6] encode none
    layer h = LIF(tau = 10 ms)[4]
    x -> dense(bias = false) -> h learn STDP(a_plus = 0.2, a_minus = 0.1, tau_pre = 10 ms, tau_post = 15 ms)
    output h.spike trace
}

network OneStep {
    dt = 1 ms
    input x[6] encode none
    layer h = LIF(tau = 10 ms, r = 20)[4]
    x -> dense(bias = false) -> h learn STDP(a_plus = 0.2, a_minus = 0.1, tau_pre = 10 ms, tau_post = 15 ms)
    output h.spike trace
}

network Rewarded {
    dt = 1 ms
    input x[6] encode none
    layer h = LIF(tau = 10 ms)[4]
    x -> dense(bias = false) -> h learn RSTDP(lr = 0.5, tau_e = 50 ms)
    output h.spike trace
}
"""

MIXED = """
from "std/neurons.snn" import LIF, LI
from "std/rules.snn" import STDP

network Mixed {
    dt = 1 ms
    input x[8] encode none
    layer h1 = LIF(tau = 5 ms)[6]
    layer h2 = LIF(tau = 5 ms)[5]
    layer out = LI(tau = 5 ms)[3]
    x -> dense -> h1
    h1 -> dense(bias = false) -> h2 learn STDP(a_plus = 0.05, a_minus = 0.05)
    h2 -> dense -> out
    output out.v trace, h2.spike count
}
"""


@functools.cache
def compiled(text: str, name: str):
    return snnspec.compile(text=text, name=name)


def online_net(w0: np.ndarray):
    with float64():
        net = compiled(ONLINE, "online.snn").Online()
    net.x_h.weight = torch.tensor(w0)
    return net


def reference_online(x: np.ndarray, w0: np.ndarray):
    """Online with numpy: LIF integrated exactly (r = 1, v_leak = 0, threshold 1, reset 0), then
    STDP (decay, on pre, on post, clip to [0, 1]), the weights of step t used at step t + 1."""
    dt, tau, a_plus, a_minus, tau_pre, tau_post = 1 * MS, 10 * MS, 0.2, 0.1, 10 * MS, 15 * MS
    steps, batch, _ = x.shape
    w = w0.copy()
    v = np.zeros((batch, w.shape[0]))
    x_pre, x_post = np.zeros((batch, w.shape[1])), np.zeros((batch, w.shape[0]))
    spikes = []
    for t in range(steps):
        current = x[t] @ w.T
        v = current + (v - current) * math.exp(-dt / tau)
        s = (v > 1).astype(float)
        v = np.where(s > 0, 0.0, v)
        spikes.append(s)
        x_pre, x_post = x_pre * math.exp(-dt / tau_pre), x_post * math.exp(-dt / tau_post)
        x_pre = x_pre + x[t]
        w = np.mean(w - x[t][:, None, :] * a_minus * x_post[:, :, None], axis=0)
        x_post = x_post + s
        w = np.mean(w + s[:, :, None] * a_plus * x_pre[:, None, :], axis=0)
        w = np.clip(w, 0.0, 1.0)
    return np.stack(spikes), w


def online_inputs(seed: int = 0, steps: int = 80, batch: int = 2):
    rng = np.random.default_rng(seed)
    return (rng.random((steps, batch, 6)) < 0.4).astype(float), rng.uniform(0.3, 0.9, (4, 6))


def test_network_updates_online_as_a_hand_written_loop():
    """Step t + 1 uses the weights the rule wrote at step t: spikes and final weights equal a numpy
    loop that does exactly that; in eval mode (weights held) the spikes differ."""
    x, w0 = online_inputs()
    expected_spikes, expected_w = reference_online(x, w0)
    net = online_net(w0)
    net.train()
    spikes = net(torch.tensor(x)).h_spike.numpy()
    assert expected_spikes.sum() > 10
    np.testing.assert_array_equal(spikes, expected_spikes)
    np.testing.assert_allclose(net.x_h.weight.numpy(), expected_w, rtol=0, atol=1e-12)
    assert np.abs(expected_w - w0).max() > 0.05
    held = online_net(w0).eval()(torch.tensor(x)).h_spike.numpy()
    assert not np.array_equal(held, spikes)


def test_network_batch_of_identical_items_learns_as_one_item():
    x, w0 = online_inputs(seed=1, batch=1)
    one, two = online_net(w0), online_net(w0)
    s1 = one(torch.tensor(x)).h_spike
    s2 = two(torch.tensor(x.repeat(2, 1))).h_spike
    assert torch.equal(s2[:, 0], s1[:, 0]) and torch.equal(s2[:, 1], s1[:, 0])
    assert torch.equal(one.x_h.weight, two.x_h.weight)
    assert not torch.equal(one.x_h.weight, torch.tensor(w0))


def test_network_batch_change_is_the_mean_of_the_items_changes():
    """One step (the weights cannot feed back yet), post neurons that spike at once (r = 20): the
    batch's change is the mean of each item's change."""
    def one_step(w0):
        with float64():
            net = compiled(ONLINE, "online.snn").OneStep()
        net.x_h.weight = torch.tensor(w0)
        return net

    x, w0 = online_inputs(seed=2, steps=1, batch=3)
    w0 = w0 / 2  # w0 + a_plus stays below the clip at 1
    x[0] = 1.0
    x[0, 1, :3] = 0.0  # the items differ
    x[0, 2] = 0.0  # (this one does not spike at all)
    net = one_step(w0)
    net(torch.tensor(x))
    alone = []
    for b in range(3):
        single = one_step(w0)
        single(torch.tensor(x[:, [b]]))
        alone.append(single.x_h.weight.numpy() - w0)
    np.testing.assert_allclose(net.x_h.weight.numpy() - w0, np.mean(alone, axis=0), rtol=0, atol=1e-15)
    assert np.abs(alone[0] - alone[1]).max() > 1e-3


def mixed_net():
    torch.manual_seed(0)
    with float64():
        net = compiled(MIXED, "mixed.snn").Mixed()
    with torch.no_grad():
        net.x_h1.weight.copy_(torch.rand(6, 8) * 1.5)
        net.h1_h2.weight = torch.rand(5, 6, dtype=torch.float64) * 0.8
        net.h2_out.weight.mul_(4)
    return net


def test_plastic_weights_stay_out_of_autograd_while_the_rest_trains():
    """LANGUAGE.md §4 / issue item 2: the plastic weight is a buffer (not a parameter), the rule changes
    it in training mode without gradients, and in the same forward pass a loss gives gradients to
    every trainable weight, including the ones before the plastic path."""
    net = mixed_net()
    params = dict(net.named_parameters())
    assert set(params) == {"x_h1.weight", "x_h1.bias", "h2_out.weight", "h2_out.bias"}
    assert "h1_h2.weight" in dict(net.named_buffers())
    updates = []
    step = net.h1_h2_STDP.step

    def recording_step(*args):
        state, w = step(*args)
        updates.append(w)
        return state, w

    net.h1_h2_STDP.step = recording_step
    w0 = net.h1_h2.weight.clone()
    x = (torch.rand(20, 4, 8, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    net.train()
    out = net(x)
    assert out.h2_spike.sum() > 0
    assert len(updates) == 20 and not any(w.requires_grad for w in updates)  # no graph through the rule
    assert not net.h1_h2.weight.requires_grad
    assert (net.h1_h2.weight - w0).abs().max() > 1e-3
    loss = (out.out_v - 0.5).pow(2).mean()
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # an optimiser step moves the trainable weights and leaves the plastic one to the rule
    w1 = net.h1_h2.weight.clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = {k: p.detach().clone() for k, p in params.items()}
    opt.step()
    assert all(not torch.equal(before[k], p) for k, p in params.items())
    assert torch.equal(net.h1_h2.weight, w1)


def test_eval_mode_freezes_plastic_weights():
    net = mixed_net().eval()
    w0 = net.h1_h2.weight.clone()
    x = (torch.rand(20, 4, 8, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    a, b = net(x), net(x)
    assert a.h2_spike.sum() > 0
    assert torch.equal(net.h1_h2.weight, w0)
    assert torch.equal(a.out_v, b.out_v)


def rewarded_net(w0: np.ndarray):
    with float64():
        net = compiled(ONLINE, "online.snn").Rewarded()
    net.x_h.weight = torch.tensor(w0)
    return net


def test_network_modulator_reaches_the_rule():
    """`reward` is a keyword of forward: 0 (the default) leaves the weights as they were; with a reward
    the weights equal the rule driven by hand with the network's own spikes; a per-item reward
    [1, 0] on identical items acts as a scalar 0.5."""
    x, w0 = online_inputs(seed=3, steps=120, batch=1)
    x2 = torch.tensor(x.repeat(2, 1))
    net = rewarded_net(w0)
    net(x2)
    assert torch.equal(net.x_h.weight, torch.tensor(w0))
    net(x2, reward=0.0)
    assert torch.equal(net.x_h.weight, torch.tensor(w0))
    net = rewarded_net(w0)
    spikes = net(torch.tensor(x), reward=1.0).h_spike.numpy()
    assert spikes.sum() > 5
    params = dict(lr=0.5, tau_e=50 * MS)
    ws = torch_driver("RSTDP", params, 1 * MS, x, spikes, w0, {"reward": np.ones((120, 1))})
    np.testing.assert_allclose(net.x_h.weight.numpy(), ws[-1], rtol=0, atol=1e-14)
    assert np.abs(ws[-1] - w0).max() > 1e-3
    half, per_item = rewarded_net(w0), rewarded_net(w0)
    half(x2, reward=0.5)
    per_item(x2, reward=torch.tensor([1.0, 0.0]))
    np.testing.assert_allclose(per_item.x_h.weight.numpy(), half.x_h.weight.numpy(), rtol=0, atol=1e-14)
    assert not torch.equal(half.x_h.weight, torch.tensor(w0))


# -- the example ---------------------------------------------------------------------------------

def stdp_digits():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import stdp_digits as module
    finally:
        sys.path.pop(0)
    return module


def test_stdp_digits_example_learns_within_bounds():
    """A few digits through the example, in training mode: the weights change and stay in [0, w_max]."""
    ex = stdp_digits()
    x, _, train, _ = ex.load_data(0)
    net = snnspec.compile(ex.SPEC).STDPDigits()
    gen = torch.Generator().manual_seed(0)
    net.x_exc.weight = torch.rand(net.x_exc.weight.shape, generator=gen) * 0.2
    w0 = net.x_exc.weight.clone()
    ex.train(net, x[train[:6]], ex.Config(), gen)
    w = net.x_exc.weight
    assert (w - w0).abs().max() > 0.01 and w.min() >= 0 and w.max() <= 1
    assert "x_exc.weight" not in dict(net.named_parameters())


@pytest.mark.slow
def test_stdp_digits_readout_beats_random_weights(tmp_path):
    """A reduced run of benchmarks/stdp_digits.py (one pass instead of two, no matched baseline): the
    linear readout of the STDP layer beats the same readout of the initial random layer."""
    ex = stdp_digits()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = ex.run(ex.Config(epochs=1, matched_baseline=False), png=tmp_path / "fields.png")
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "fields.png").stat().st_size > 1000
    assert result.accuracy_stdp > result.accuracy_random + 0.05, result


# -- the JAX backend against torch ----------------------------------------------------------------

# One network per standard rule, with trainable weights before, after and beside the plastic path
# (gradients flow around the rule, never through it): a plastic path from a layer, one from the input
# through ops before its dense (a delay), a plastic recurrent path, a plastic dense with a bias, a
# modulator; from a `direct` input (computed once), from a layer's state, and ops after the dense
# (delay, dropout, scale).
PLASTIC_NETS = """
from "std/neurons.snn" import LIF, LI, Leaky
from "std/rules.snn" import STDP, TripletSTDP, RSTDP

network NetSTDP {
    dt = 1 ms
    input x[8] encode none
    layer h1 = LIF(tau = 5 ms)[6]
    layer h2 = LIF(tau = 5 ms, r = 4)[5]
    layer out = LI(tau = 5 ms)[3]
    x -> dense -> h1
    h1 -> dense -> h2 learn STDP(a_plus = 0.05, a_minus = 0.04, soft = 0.5, w_min = -1)
    x -> delay(2) -> scale(0.5) -> dense(bias = false) -> h2 learn STDP(a_plus = 0.03, a_minus = 0.05)
    h2 -> dense -> out
    output out.v trace, h2.spike count
}

network NetTriplet {
    dt = 1 ms
    input x[8] encode none
    layer h1 = LIF(tau = 5 ms)[6]
    layer h2 = LIF(tau = 5 ms, r = 4)[5]
    layer out = LI(tau = 5 ms)[3]
    x -> dense -> h1
    h1 -> dense(bias = false) -> h2 learn TripletSTDP(a2_plus = 0.02, a3_plus = 0.05, a2_minus = 0.03, a3_minus = 0.01)
    h2 -> dense(bias = false) -> h2 learn TripletSTDP(a2_plus = 0.01, a3_plus = 0.01, w_max = 2)
    h2 -> dense -> out
    output out.v trace, h2.spike trace
}

network NetRSTDP {
    dt = 1 ms
    input x[8] encode none
    layer h1 = LIF(tau = 5 ms)[6]
    layer h2 = LIF(tau = 5 ms, r = 4)[5]
    layer out = LI(tau = 5 ms)[3]
    x -> dense -> h1
    h1 -> dense(bias = false) -> h2 learn RSTDP(lr = 2, tau_e = 20 ms, w_min = -1, w_max = 2)
    h2 -> dense -> out
    h2 -> dense -> h1
    output out.v trace, h2.spike count
}

network NetPaths {
    dt = 1 ms
    steps = 25
    input x[6] encode direct
    layer a = Leaky(beta = 0.8)[5]
    layer h = LIF(tau = 5 ms, r = 4)[4]
    x -> dense -> h learn STDP(a_plus = 0.05)
    x -> dense -> a
    a.mem -> dense(bias = false) -> delay(2) -> dropout(0.2) -> h learn STDP(a_plus = 0.02, a_minus = 0.03)
    h -> dense -> scale(2) -> h learn STDP(a_plus = 0.01)
    output h.spike count, a.mem trace
}
"""


@dataclass
class CrossCase:
    name: str  # the network class
    text: str | None = None  # the spec's text (else `path`)
    path: Path | None = None
    boost: float = 5.0  # every weight multiplied, so that spikes go through
    steps: int = 40  # for sequence inputs, and in place of the spec's `steps` (350 in stdp.snn)
    modulators: tuple[dict, ...] = ({}, {})  # per forward call

    def source(self) -> dict:
        return {"text": self.text, "name": "plastic_nets.snn"} if self.text else {"path": self.path}


CROSS_CASES = [
    CrossCase("NetSTDP", PLASTIC_NETS),
    CrossCase("NetTriplet", PLASTIC_NETS),
    CrossCase("NetRSTDP", PLASTIC_NETS, modulators=({"reward": 1.0}, {"reward": np.array([1.5, -0.5, 0.0])})),
    CrossCase("NetPaths", PLASTIC_NETS, boost=4.0),  # a static input, a state source, delay and dropout
    CrossCase("STDPNet", path=ROOT / "specs" / "examples" / "stdp.snn", boost=1.0),
    CrossCase("STDPDigits", path=ROOT / "specs" / "examples" / "stdp_digits.snn", boost=1.0, steps=60),
]


@functools.cache
def cross_module(name: str, backend: str):
    case = next(c for c in CROSS_CASES if c.name == name)
    return snnspec.compile(**case.source(), backend=backend)


def changing_buffers(net: torch.nn.Module) -> dict:
    """torch's buffers that change as the module runs (plastic weights, batchnorm statistics): all
    but the fixed params of neuron and rule modules, which the JAX code holds as constants."""
    return {k: v for k, v in net.named_buffers() if not hasattr(net.get_submodule(k.rpartition(".")[0]),
                                                                 "init_state")}


def cross_inputs(case: CrossCase, net_ir, batch: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for inp in net_ir.inputs:
        if inp.encoding == "none":
            out.append((torch.rand((case.steps, batch, *inp.shape), generator=gen) < 0.4).double())
        else:
            out.append(torch.rand((batch, *inp.shape), generator=gen, dtype=torch.float64))
    return out


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max(initial=0.0) / max(1.0, np.abs(a).max(initial=0.0)))


@pytest.fixture
def same_rate_draws(monkeypatch):
    """Rate coding draws the same spikes in both backends: one fixed uniform draw per shape."""
    draws: dict[tuple[int, ...], np.ndarray] = {}

    def u(shape):
        shape = tuple(int(n) for n in shape)
        if shape not in draws:
            draws[shape] = np.random.default_rng(int(np.prod(shape))).random(shape)
        return draws[shape]

    monkeypatch.setattr(torch, "bernoulli", lambda p, *a, **k: (torch.as_tensor(u(p.shape), dtype=p.dtype) < p)
                        .to(p.dtype))
    monkeypatch.setattr(jax.random, "bernoulli", lambda key, p=0.5, shape=None: jnp.asarray(
        u(jnp.shape(p) if shape is None else shape), dtype=jnp.result_type(p)) < p)


@pytest.mark.skipif(jax is None, reason="jax is not installed")
@pytest.mark.parametrize("case", CROSS_CASES, ids=[c.name for c in CROSS_CASES])
def test_jax_network_learns_as_torch(case, same_rate_draws, monkeypatch):
    """Same initial weights (torch's state copied into JAX params and buffers), same inputs, two
    forward calls in training mode: the outputs and the plastic weights after each call are
    torch's, and the gradients of a loss with respect to every trainable param (the plastic weights
    are not params) are torch's; then in evaluation mode (`train=False`) the buffers stay as they
    were and the outputs are torch's in `eval()`. All in float64."""
    with float64(), jax_float64():
        torch.manual_seed(0)
        net = getattr(cross_module(case.name, "torch"), case.name)()
        with torch.no_grad():
            for _name, w in [*net.named_parameters(), *changing_buffers(net).items()]:
                w.mul_(case.boost)
        J = getattr(cross_module(case.name, "jax"), case.name)
        if net.steps:
            net.steps = case.steps
            monkeypatch.setattr(J, "steps", case.steps)
        params = {k: jnp.asarray(v.detach().numpy()) for k, v in net.named_parameters()}
        buffers = {k: jnp.asarray(v.numpy()) for k, v in changing_buffers(net).items()}
        assert list(buffers) == list(J.init_buffers(jax.random.PRNGKey(0)))
        assert set(buffers) == {k for k in buffers if k.endswith((".weight", ".bias"))} and buffers
        net_ir = snnspec.load_lowered(**case.source()).networks[case.name]
        inputs = cross_inputs(case, net_ir)
        xs = [jnp.asarray(x.numpy()) for x in inputs]
        key = jax.random.PRNGKey(0)
        apply = jax.jit(J.apply_with_buffers, static_argnames="train")

        def loss_of(out, xp):
            return sum((1 + i) * xp.mean(getattr(out, f) ** 2) for i, f in enumerate(out._fields))

        worst = {"outputs": 0.0, "weights": 0.0, "gradients": 0.0}
        spikes = 0.0
        w0 = {k: v.clone() for k, v in changing_buffers(net).items()}
        for mods in case.modulators:
            torch_mods = {k: torch.as_tensor(v) for k, v in mods.items()}
            net.zero_grad()
            out_t = net(*inputs, **torch_mods)
            if params:
                loss_of(out_t, torch).backward()

            def loss_j(p, buffers=buffers, mods=mods):
                out, new = apply(p, buffers, *xs, key, train=True, **mods)
                return loss_of(out, jnp), (out, new)

            grads, (out_j, buffers) = jax.grad(loss_j, has_aux=True)(params)
            for f in out_t._fields:
                worst["outputs"] = max(worst["outputs"], rel_diff(getattr(out_t, f).detach().numpy(),
                                                                  getattr(out_j, f)))
            spikes += sum(float(getattr(out_t, f).detach().abs().sum()) for f in out_t._fields if "spike" in f)
            for k, v in changing_buffers(net).items():
                worst["weights"] = max(worst["weights"], rel_diff(v.numpy(), buffers[k]))
            for k, p in net.named_parameters():
                expected = p.grad.numpy() if p.grad is not None else np.zeros(p.shape)
                worst["gradients"] = max(worst["gradients"], rel_diff(expected, grads[k]))
        print(f"{case.name}: max relative torch-vs-JAX differences {worst}")
        assert spikes > 0
        assert all(not torch.equal(w0[k], v) for k, v in changing_buffers(net).items() if k.endswith(".weight"))
        assert worst["outputs"] < 1e-12 and worst["weights"] < 1e-12 and worst["gradients"] < 1e-11, worst
        # evaluation mode: weights held, as torch's `eval()`
        net.eval()
        mods = case.modulators[-1]
        out_t = net(*inputs, **{k: torch.as_tensor(v) for k, v in mods.items()})
        out_j, same = apply(params, buffers, *xs, key, train=False, **mods)
        assert all(np.array_equal(same[k], buffers[k]) for k in buffers)
        for f in out_t._fields:
            assert rel_diff(getattr(out_t, f).detach().numpy(), getattr(out_j, f)) < 1e-12, f


@pytest.mark.skipif(jax is None, reason="jax is not installed")
def test_jax_plastic_weights_are_buffers_not_params():
    """Plastic weights and biases stay out of `init(key)` (torch's `named_parameters()`) and live in
    `init_buffers(key)`, drawn as torch draws them; a plastic network needs its buffers."""
    torch.manual_seed(0)
    net = cross_module("NetSTDP", "torch").NetSTDP()
    J = cross_module("NetSTDP", "jax").NetSTDP
    params = J.init(jax.random.PRNGKey(0))
    assert list(params) == [k for k, _ in net.named_parameters()]
    assert "h1_h2.weight" not in params and "x_h2.weight" not in params
    buffers = J.init_buffers(jax.random.PRNGKey(1))
    assert list(buffers) == list(changing_buffers(net)) == ["h1_h2.weight", "h1_h2.bias", "x_h2.weight"]
    for name, value in changing_buffers(net).items():
        assert buffers[name].shape == tuple(value.shape)
        bound = 1 / math.sqrt({"h1_h2": 6, "x_h2": 8}[name.split(".")[0]])
        assert np.abs(np.asarray(buffers[name])).max() <= bound and np.abs(value.numpy()).max() <= bound
    with pytest.raises(ValueError, match="key"):
        J.init_buffers()
    x = jnp.zeros((10, 2, 8))
    with pytest.raises(ValueError, match="buffers"):
        J.apply(params, x)
    out, new = J.apply_with_buffers(params, buffers, x)
    assert set(new) == set(buffers) and out.h2_spike.shape == (2, 5)


@pytest.mark.skipif(jax is None, reason="jax is not installed")
def test_jax_step_by_step_holds_plastic_weights():
    """`step` runs in evaluation mode: scanned over `encode`, it gives `apply(train=False)`, with the
    plastic weights read from `buffers` and held."""
    with jax_float64():
        J = cross_module("NetTriplet", "jax").NetTriplet
        params = J.init(jax.random.PRNGKey(0), jnp.float64)
        buffers = {k: v * 5 for k, v in J.init_buffers(jax.random.PRNGKey(1), jnp.float64).items()}
        params = {k: v * 5 for k, v in params.items()}
        x = (jax.random.uniform(jax.random.PRNGKey(2), (30, 2, 8)) < 0.4).astype(jnp.float64)
        expected, same = J.apply_with_buffers(params, buffers, x, train=False)
        assert all(same[k] is buffers[k] for k in buffers)
        _, per_step = jax.lax.scan(lambda s, xs: J.step(params, s, *xs, buffers=buffers), J.init_state(params, 2),
                                   J.encode(x))
        np.testing.assert_allclose(per_step.out_v, expected.out_v, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(per_step.h2_spike, expected.h2_spike)
        assert expected.h2_spike.sum() > 0
        learned, _ = J.apply_with_buffers(params, buffers, x)  # training mode: the weights move
        assert not np.array_equal(learned.h2_spike, expected.h2_spike)


@pytest.mark.skipif(jax is None, reason="jax is not installed")
def test_jax_rule_modulator_may_be_a_scalar():
    with jax_float64():
        R = jax_rules().RSTDP
        p = R.params(dt=1 * MS)
        w = jnp.full((3, 4), 0.5)
        state = R.init_state(p, 2, 3, 4, dtype=jnp.float64)
        pre, post = jnp.ones((2, 4)), jnp.ones((2, 3))
        state, _ = R.step(p, state, w, pre, post, 1.0, dt=1 * MS)  # eligibility builds up
        results = [R.step(p, state, w, pre, post, r, dt=1 * MS)[1] for r in (1.0, jnp.asarray(1.0), jnp.ones(1),
                                                                              jnp.ones(2))]
        for other in results[1:]:
            np.testing.assert_array_equal(results[0], other)
        assert not np.array_equal(results[0], w)
        # no gradient flows through a weight change
        grad = jax.grad(lambda pre: R.step(p, state, w, pre, post, 1.0, dt=1 * MS)[1].sum())(pre)
        assert not np.any(np.asarray(grad))


def test_lowering_refuses_a_rule_that_breaks_the_scopes():
    """IR from another front end skips the checker: the lowering (lower/rule.py) refuses a post state
    changed `on pre` with a diagnostic at the rule, rather than printing wrong code for any backend."""
    from snnspec.diagnostics import Diagnostics
    from snnspec.lower import lower

    spec = snnspec.load(STD_RULES)
    stdp = spec.rules["STDP"]
    pre, post = (next(e for e in stdp.on_events if e.event == side) for side in ("pre", "post"))
    broken_pre = pre.model_copy(update={"body": (*pre.body, post.body[0])})  # x_post += 1 `on pre`
    broken = stdp.model_copy(update={"on_events": (broken_pre, post)})
    diags = Diagnostics()
    lower(spec.model_copy(update={"rules": {**spec.rules, "STDP": broken}}), diags)
    (error,) = diags.errors
    assert "`on pre` cannot change the post state 'x_post'" in error.message
    assert error.span == stdp.span


TRICKY_RULE = """
from "std/neurons.snn" import LIF

rule Tricky {
    param p = 0.01
    param values = 0.5
    param tau = 20 ms
    pre state pre = 0
    pre state params = 0
    post state post = 0
    post state state = 0
    syn state dtype = 0
    syn state jnp = 0
    modulator train
    modulator key
    modulator x
    dpre/dt = -pre / tau
    dpost/dt = -post / tau
    djnp/dt = -jnp / tau
    params <- params * 0.5
    state <- state * 0.5 + post
    on pre { pre += 1; params += 1; dtype += p * post; w -= p * post * values }
    on post { post += 1; state += 1; jnp += pre * params; w += p * pre * (1 + train) + key * jnp * 0.1 }
    w <- w + x * dtype * 0.001
    clip w in [0, 1]
}

network N {
    dt = 1 ms
    input x[6] encode none
    layer h = LIF(tau = 10 ms, r = 3)[4]
    x -> dense -> h learn Tricky(p = 0.05)
    output h.spike trace
}
"""


@pytest.mark.skipif(jax is None, reason="jax is not installed")
def test_rule_names_never_shadow_generated_names():
    """Rule states, params and modulators named as the generated code's own names (and a modulator
    named as the network's input): both backends build, take the modulators by the same keywords,
    and learn the same weights."""
    with float64(), jax_float64():
        torch.manual_seed(0)
        net = snnspec.compile(text=TRICKY_RULE, name="tricky_rule.snn").N()
        J = snnspec.compile(text=TRICKY_RULE, name="tricky_rule.snn", backend="jax").N
        params = {k: jnp.asarray(v.detach().numpy()) for k, v in net.named_parameters()}
        buffers = {k: jnp.asarray(v.numpy()) for k, v in changing_buffers(net).items()}
        x = (torch.rand(30, 2, 6, generator=torch.Generator().manual_seed(1)) < 0.5).double()
        mods = {"train_": 0.5, "key_": np.array([1.0, 2.0]), "x_1": 1.0}  # train, key, x: taken names
        out_t = net(x, **{k: torch.as_tensor(v) for k, v in mods.items()})
        out_j, new = J.apply_with_buffers(params, buffers, jnp.asarray(x.numpy()), **mods)
        assert out_t.h_spike.sum() > 0
        np.testing.assert_array_equal(out_t.h_spike.numpy(), out_j.h_spike)
        np.testing.assert_allclose(net.x_h.weight.numpy(), new["x_h.weight"], rtol=0, atol=1e-14)
        assert np.abs(net.x_h.weight.numpy() - np.asarray(buffers["x_h.weight"])).max() > 1e-3


CONSTANT_CHANGE = """
from "std/neurons.snn" import LIF
rule Drift {
    param rate = 0.001
    pre state x = 0
    w <- w + rate
    on pre { x += 1; w -= 0.0005 }
}
network N {
    dt = 1 ms
    input x[3] encode none
    layer h = LIF[2]
    x -> dense(bias = false) -> h learn Drift
    output h.spike count
}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_change_that_is_the_same_for_every_sample(backend):
    """`w <- w + rate` changes w by `rate` at every step, whatever the batch (no per-sample value to
    average); `on pre` still averages its gated change."""
    x = np.zeros((5, 2, 3))
    x[1, 0, 0] = 1.0  # one presynaptic spike, in one of the two samples
    w0 = np.full((2, 3), 0.5)
    if backend == "torch":
        with float64():
            net = snnspec.compile(text=CONSTANT_CHANGE, name="drift.snn").N()
        net.x_h.weight = torch.tensor(w0)
        net(torch.tensor(x))
        w = net.x_h.weight.numpy()
    else:
        J = snnspec.compile(text=CONSTANT_CHANGE, name="drift.snn", backend="jax").N
        with jax_float64():
            _, buffers = J.apply_with_buffers({}, {"x_h.weight": jnp.asarray(w0)}, jnp.asarray(x))
            w = np.asarray(buffers["x_h.weight"])
    expected = w0 + 5 * 0.001
    expected[:, 0] -= 0.0005 / 2
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-12)
