"""The ODE lowering (snnspec/lower/integrate.py) against oracles outside the compiler.

Each lowered update is iterated numerically with `snnspec.expr.evaluate` (float64) and compared with:

- the closed-form solution of NIR's LIF and CubaLIF for a piecewise-constant input (LANGUAGE.md §2:
  ODEs are integrated over one `dt` with the inputs held constant; §7: NIR's LIF), to 1e-9 relative;
- a matrix exponential computed here in numpy (Taylor series with scaling and squaring), for
  CubaLIF and for coupled linear systems written in the tests (a 3-state chain, a damped oscillator);
- a fine-step fourth-order Runge-Kutta solution computed here in numpy, for nonlinear models
  (Izhikevich, AdEx, a conductance-based LIF): `euler` and `exponential_euler` converge at order 1,
  `rk4` at order 4.

It also pins which method the compiler picks by default (LANGUAGE.md §2) and that params using `dt`
stay expressions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

import snnspec
from snnspec import ir
from snnspec.expr import evaluate, names

STD_NEURONS = Path(__file__).resolve().parent.parent / "specs" / "std" / "neurons.snn"

# ---- helpers: evaluate a lowered neuron step by step ---------------------------------------------


@pytest.fixture(scope="module")
def std() -> dict[str, ir.LNeuron]:
    return snnspec.load_lowered(STD_NEURONS).neurons


@functools.cache
def lower_one(text: str, name: str) -> ir.LNeuron:
    return snnspec.load_lowered(text=text, name=f"{name}.snn").neurons[name]


def param_env(neuron: ir.LNeuron, dt: float, **overrides: float) -> dict[str, float]:
    """Every param's value (SI), defaults evaluated in dependency order, some overridden."""
    unknown = set(overrides) - {p.name for p in neuron.params}
    assert not unknown, f"no such params: {unknown}"
    env = {"dt": dt, "t": 0.0}
    for p in neuron.params:
        env[p.name] = overrides[p.name] if p.name in overrides else evaluate(p.default, env)
    return env


def step(neuron: ir.LNeuron, env: dict[str, float], state: dict[str, float]) -> dict[str, float]:
    """One step of the lowered updates (lets first, then every update from the old values)."""
    scope = {**env, **state}
    for let in neuron.lets:
        scope[let.var] = evaluate(let.value, scope)
    new = {u.var: evaluate(u.value, scope) for u in neuron.updates}
    return {**state, **new}


def simulate(neuron: ir.LNeuron, env: dict[str, float], state: dict[str, float],
             inputs: Sequence[dict[str, float]], keys: Sequence[str]) -> np.ndarray:
    """The states `keys` after each step, one row per step, for a per-step input sequence."""
    rows = []
    for inp in inputs:
        state = step(neuron, {**env, **inp}, state)
        rows.append([state[k] for k in keys])
    return np.array(rows)


def segments_to_steps(segments: Sequence[tuple[int, float]], name: str = "I") -> list[dict[str, float]]:
    return [{name: value} for n, value in segments for _ in range(n)]


def max_rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| over the run, relative to the largest |want| (the trajectory's scale)."""
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


# ---- oracles ------------------------------------------------------------------------------------


def expm(a: np.ndarray) -> np.ndarray:
    """exp(a) by a Taylor series with scaling and squaring (float64; the test's own, no scipy)."""
    norm = np.linalg.norm(a, 1)
    s = max(0, int(math.ceil(math.log2(norm))) + 1) if norm > 0 else 0
    b = a / 2.0**s
    out = np.eye(len(a))
    term = np.eye(len(a))
    for k in range(1, 30):
        term = term @ b / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


def linear_propagate(A: np.ndarray, b_per_input: Callable[[float], np.ndarray], x0: np.ndarray, dt: float,
                     inputs: Sequence[float]) -> np.ndarray:
    """x' = A x + b(I) with I held per step: x <- expm([[A, b], [0, 0]] dt) [x; 1]."""
    n = len(x0)
    x = np.array(x0, dtype=float)
    rows = []
    cache: dict[float, np.ndarray] = {}
    for value in inputs:
        if value not in cache:
            M = np.zeros((n + 1, n + 1))
            M[:n, :n] = A
            M[:n, n] = b_per_input(value)
            cache[value] = expm(M * dt)
        x = (cache[value] @ np.append(x, 1.0))[:n]
        rows.append(x.copy())
    return np.array(rows)


def rk4_reference(f: Callable[[np.ndarray, float], np.ndarray], x0: np.ndarray, inputs: Sequence[float],
                  dt: float, substeps: int) -> np.ndarray:
    """Classical RK4 at step dt / substeps, the input held over each outer step of dt; the state at
    the end of every outer step."""
    h = dt / substeps
    x = np.array(x0, dtype=float)
    rows = []
    for value in inputs:
        for _ in range(substeps):
            k1 = f(x, value)
            k2 = f(x + h / 2 * k1, value)
            k3 = f(x + h / 2 * k2, value)
            k4 = f(x + h * k3, value)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        rows.append(x.copy())
    return np.array(rows)


def test_expm_oracle_is_itself_right() -> None:
    """The numpy matrix exponential above agrees with an eigen-decomposition and with exp on a diagonal."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4)) * 3
    w, v = np.linalg.eig(a)
    assert np.allclose(expm(a), (v @ np.diag(np.exp(w)) @ np.linalg.inv(v)).real, rtol=1e-11, atol=1e-11)
    d = np.diag([-50.0, -0.1, 0.0, 2.0])
    assert np.allclose(expm(d), np.diag(np.exp(np.diag(d))), rtol=1e-12, atol=0)


# ---- exact: NIR LIF -----------------------------------------------------------------------------

LIF_SEGMENTS = [(37, 0.0), (90, 1.3), (61, -0.4), (120, 2.2), (92, 0.7)]  # (steps, input) pairs: 400 steps


@pytest.mark.parametrize("dt", [1e-4, 1e-3, 2.5e-3])
@pytest.mark.parametrize("tau, r, v_leak, v0", [(10e-3, 1.0, 0.0, 0.0), (2e-3, 0.5, -0.3, 0.8),
                                                (100e-3, 3.0, 0.2, -1.0)])
def test_lif_exact_matches_analytic_solution(std, dt, tau, r, v_leak, v0) -> None:
    """tau dv/dt = v_leak - v + r I (NIR LIF): v(t) = v_inf + (v(t0) - v_inf) exp(-(t - t0) / tau) on each
    segment of constant input, v_inf = v_leak + r I. The lowered `exact` update, iterated 400 times,
    stays within 1e-9 of it (relative to the trajectory's scale, and pointwise where |v| is not tiny)."""
    lif = std["LIF"]
    assert lif.method == "exact"
    env = param_env(lif, dt, tau=tau, r=r, v_leak=v_leak)
    got = simulate(lif, env, {"v": v0}, segments_to_steps(LIF_SEGMENTS), ["v"])[:, 0]

    want, v_start = [], v0
    for n, current in LIF_SEGMENTS:
        v_inf = v_leak + r * current
        want += [v_inf + (v_start - v_inf) * math.exp(-k * dt / tau) for k in range(1, n + 1)]
        v_start = v_inf + (v_start - v_inf) * math.exp(-n * dt / tau)
    want = np.array(want)
    assert max_rel_error(got, want) < 1e-9
    big = np.abs(want) > 1e-3 * np.max(np.abs(want))
    assert np.max(np.abs(got[big] - want[big]) / np.abs(want[big])) < 1e-9


def test_lif_exact_has_no_growing_exponential(std) -> None:
    """The printed update uses exp(-dt / tau) only: exp(+dt/tau) factors overflow in float32."""
    lif = std["LIF"]
    env = param_env(lif, 1.0, tau=1e-3)  # dt / tau = 1000: exp(+1000) would overflow even float64
    new = step(lif, {**env, "I": 0.5}, {"v": 0.2})["v"]
    assert new == pytest.approx(0.5, rel=1e-12)


# ---- exact: NIR CubaLIF -------------------------------------------------------------------------


def cubalif_analytic(tau_syn: float, tau_mem: float, r: float, v_leak: float, w_in: float, syn0: float, v0: float,
                     segments: Sequence[tuple[int, float]], dt: float) -> np.ndarray:
    """tau_syn syn' = -syn + w_in I, tau_mem v' = v_leak - v + r syn, by hand, I constant on each segment:
    syn(s) = s_inf + D e^{-s/tau_syn}, s_inf = w_in I, D = syn(0) - s_inf;
    v(s)   = v_inf + K e^{-s/tau_syn} + (v(0) - v_inf - K) e^{-s/tau_mem},
    v_inf = v_leak + r s_inf, K = r D tau_syn / (tau_syn - tau_mem)   (tau_syn != tau_mem)."""
    def at(s: float, syn_start: float, v_start: float, current: float) -> tuple[float, float]:
        s_inf = w_in * current
        D = syn_start - s_inf
        v_inf = v_leak + r * s_inf
        K = r * D * tau_syn / (tau_syn - tau_mem)
        syn = s_inf + D * math.exp(-s / tau_syn)
        v = v_inf + K * math.exp(-s / tau_syn) + (v_start - v_inf - K) * math.exp(-s / tau_mem)
        return syn, v

    rows, syn_start, v_start = [], syn0, v0
    for n, current in segments:
        rows += [at(k * dt, syn_start, v_start, current) for k in range(1, n + 1)]
        syn_start, v_start = at(n * dt, syn_start, v_start, current)
    return np.array(rows)


CUBA_PARAMS = [
    dict(tau_syn=5e-3, tau_mem=10e-3, r=1.0, v_leak=0.0, w_in=1.0),
    dict(tau_syn=20e-3, tau_mem=4e-3, r=2.0, v_leak=-0.25, w_in=0.6),   # tau_syn > tau_mem
    dict(tau_syn=1e-3, tau_mem=50e-3, r=0.3, v_leak=0.1, w_in=-1.5),
]
CUBA_SEGMENTS = [(25, 0.0), (80, 1.5), (45, -0.6), (100, 0.9), (50, 0.0)]  # 300 steps


@pytest.mark.parametrize("dt", [1e-4, 1e-3, 2e-3])
@pytest.mark.parametrize("params", CUBA_PARAMS)
def test_cubalif_exact_matches_analytic_and_expm(std, dt, params) -> None:
    """CubaLIF's `exact` update equals the two-exponential closed form to 1e-9 relative, and a numpy
    matrix exponential of the same linear system (a second, independent oracle)."""
    cuba = std["CubaLIF"]
    assert cuba.method == "exact"
    env = param_env(cuba, dt, **params)
    syn0, v0 = 0.4, -0.2
    got = simulate(cuba, env, {"syn": syn0, "v": v0}, segments_to_steps(CUBA_SEGMENTS), ["syn", "v"])

    want = cubalif_analytic(**params, syn0=syn0, v0=v0, segments=CUBA_SEGMENTS, dt=dt)
    for col in range(2):
        assert max_rel_error(got[:, col], want[:, col]) < 1e-9

    ts, tm, r, v_leak, w = (params[k] for k in ("tau_syn", "tau_mem", "r", "v_leak", "w_in"))
    A = np.array([[-1 / ts, 0.0], [r / tm, -1 / tm]])
    numeric = linear_propagate(A, lambda i: np.array([w * i / ts, v_leak / tm]), np.array([syn0, v0]), dt,
                               [s["I"] for s in segments_to_steps(CUBA_SEGMENTS)])
    for col in range(2):
        assert max_rel_error(got[:, col], numeric[:, col]) < 1e-9


@pytest.mark.parametrize("ratio", [1.0, 1 + 1e-9])
def test_cubalif_exact_with_equal_time_constants(std, ratio) -> None:
    """tau_syn == tau_mem (what a NIR graph exported from snnTorch's Synaptic with alpha == beta holds):
    the closed form is v(h) = v_inf + (v0 - v_inf) e^{-h/tau} + r D (h / tau) e^{-h/tau}. The lowered
    update writes (e^{-h/tau_syn} - e^{-h/tau_mem}) / (1/tau_mem - 1/tau_syn) as
    h (e^{-h/tau_syn} + e^{-h/tau_mem}) / 2 * tanh(w) / w, finite and free of cancellation there."""
    cuba = std["CubaLIF"]
    tau, dt, r = 10e-3, 1e-3, 1.0
    env = param_env(cuba, dt, tau_syn=tau * ratio, tau_mem=tau, r=r)
    got = step(cuba, {**env, "I": 1.0}, {"syn": 0.5, "v": 0.0})["v"]
    D, v_inf, h = 0.5 - 1.0, r * 1.0, dt
    want = v_inf + (0.0 - v_inf) * math.exp(-h / tau) + r * D * (h / tau) * math.exp(-h / tau)
    assert got == pytest.approx(want, rel=1e-9)


# ---- exact: coupled linear systems written here --------------------------------------------------

CHAIN = """
neuron Chain {
    param tau_a = 4 ms
    param tau_b = 7 ms
    param tau_c = 13 ms
    param k_ab = 0.6
    param k_bc = -1.5
    param k_ac = 0.25
    param c0 = 0.3
    state a = 0
    state b = 0
    state c = 0
    input I = 0
    da/dt = (-a + I) / tau_a
    db/dt = (-b + k_ab * a) / tau_b
    dc/dt = (-c + k_bc * b + k_ac * a + c0) / tau_c
}
"""


@pytest.mark.parametrize("dt", [2e-4, 1e-3, 5e-3])
def test_three_state_chain_exact_matches_expm(dt) -> None:
    """A 3-state linear chain (a drives b, a and b drive c, a constant drive on c) is integrated `exact`
    and matches exp(A dt) from numpy to 1e-9 over 300 steps, with two parameter sets."""
    chain = lower_one(CHAIN, "Chain")
    assert chain.method == "exact", chain.method_note
    inputs = segments_to_steps([(40, 0.0), (100, 2.0), (60, -1.0), (100, 0.5)])
    for overrides in ({}, dict(tau_a=30e-3, tau_b=2e-3, tau_c=9e-3, k_ab=-2.0, k_bc=0.4, k_ac=1.1, c0=-0.2)):
        env = param_env(chain, dt, **overrides)
        ta, tb, tc, kab, kbc, kac, c0 = (env[k] for k in ("tau_a", "tau_b", "tau_c", "k_ab", "k_bc", "k_ac", "c0"))
        x0 = np.array([0.1, -0.3, 0.5])
        got = simulate(chain, env, dict(zip("abc", x0, strict=True)), inputs, ["a", "b", "c"])
        A = np.array([[-1 / ta, 0, 0], [kab / tb, -1 / tb, 0], [kac / tc, kbc / tc, -1 / tc]])
        drive = np.array([1 / ta, 0.0, 0.0]), np.array([0.0, 0.0, c0 / tc])
        want = linear_propagate(A, lambda i, d=drive: d[0] * i + d[1], x0, dt, [s["I"] for s in inputs])
        for col in range(3):
            assert max_rel_error(got[:, col], want[:, col]) < 1e-9


OSCILLATOR = """
neuron Osc {
    param tau = 20 ms
    param omega = 300 / s
    state x = 0
    state y = 0
    input I = 0
    dx/dt = -x / tau - omega * y + I / tau
    dy/dt = omega * x - y / tau
}
"""


def test_damped_oscillator_exact_is_real_and_matches_expm() -> None:
    """Complex eigenvalues (-1/tau +- i omega): the `exact` update is written with cos/sin (no imaginary
    unit, which the language cannot print) and matches numpy's exp(A dt) to 1e-9."""
    osc = lower_one(OSCILLATOR, "Osc")
    assert osc.method == "exact", osc.method_note
    used = {c.fn for u in osc.updates for c in _calls(u.value)}
    assert {"cos", "sin"} <= used
    dt = 1e-3
    inputs = segments_to_steps([(50, 1.0), (150, 0.0), (100, -0.5)])
    for tau, omega in ((20e-3, 300.0), (5e-3, 2000.0)):
        env = param_env(osc, dt, tau=tau, omega=omega)
        got = simulate(osc, env, {"x": 0.2, "y": -0.1}, inputs, ["x", "y"])
        A = np.array([[-1 / tau, -omega], [omega, -1 / tau]])
        drive = np.array([1 / tau, 0.0])
        want = linear_propagate(A, lambda i, d=drive: d * i, np.array([0.2, -0.1]), dt, [s["I"] for s in inputs])
        for col in range(2):
            assert max_rel_error(got[:, col], want[:, col]) < 1e-9


def _calls(expr: ir.Expr) -> list[ir.Call]:
    from snnspec.expr import walk
    return [n for n in walk(expr) if isinstance(n, ir.Call)]


RESONATOR = """
neuron Res {
    param tau = 10 ms
    param k = 2
    state v = 0
    state w = 0
    input I = 0
    dv/dt = (-v - k * w + I) / tau
    dw/dt = (v - w) / tau
}
"""


def test_eigenvalues_of_unknown_kind_do_not_give_nan() -> None:
    """Eigenvalues (-1 +- sqrt(-k)) / tau are real for k < 0 and complex for k > 0: sympy's closed form
    uses sqrt(-k), which is NaN for the default k = 2. The compiler must not emit it; it falls back to
    exponential Euler and says why, and the update is finite for both signs of k."""
    res = lower_one(RESONATOR, "Res")
    assert res.method == "exponential_euler"
    assert res.method_note and "exact" in res.method_note
    for k in (2.0, -0.5):
        env = param_env(res, 1e-3, k=k)
        new = step(res, {**env, "I": 1.0}, {"v": 0.1, "w": 0.2})
        assert all(math.isfinite(x) for x in new.values())


# ---- nonlinear models: convergence to a fine RK4 reference -------------------------------------


def orders(errors: Sequence[float]) -> list[float]:
    """Observed orders of convergence for step sizes halving each time."""
    return [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]


IZH_INPUT_MS = [(0.0, 4.0), (3.0, 20.0), (1.0, 12.0), (-2.0, 4.0)]  # (input in mV, duration in ms): 40 ms


def izh_inputs(dt: float) -> list[float]:
    """The input (SI, volts) per step of dt, held over each step; segment ends fall on every grid used."""
    out = []
    for value, ms in IZH_INPUT_MS:
        out += [value * 1e-3] * round(ms * 1e-3 / dt)
    return out


def izh_rhs_si(a: float = 20.0, b: float = 0.2) -> Callable[[np.ndarray, float], np.ndarray]:
    """Izhikevich (2003) as in the paper (mV, ms), wrapped to SI (V, s): v' = 0.04 v^2 + 5 v + 140 - u + I,
    u' = a (b v - u)."""
    def f(x: np.ndarray, current: float) -> np.ndarray:
        v, u, i = x[0] * 1e3, x[1] * 1e3, current * 1e3  # mV
        dv = 0.04 * v * v + 5 * v + 140 - u + i          # mV/ms
        du = (a * 1e-3) * (b * v - u)                    # a in 1/ms
        return np.array([dv, du])                        # mV/ms == V/s
    return f


IZH_RK4 = """
neuron IzhRK4 {
    param a = 0.02 / ms
    param b = 0.2
    param v_init = -65 mV
    state v = v_init
    state u = b * v_init
    input I = 0 mV
    method rk4
    dv/dt = (0.04 / mV * v ** 2 + 5 * v + 140 mV - u + I) / ms
    du/dt = a * (b * v - u)
}
"""


def _izh_errors(neuron: ir.LNeuron, dts: Sequence[float]) -> list[float]:
    x0 = np.array([-65e-3, 0.2 * -65e-3])
    ref_dt = dts[-1] / 8
    ref = rk4_reference(izh_rhs_si(), x0, izh_inputs(ref_dt), ref_dt, 16)
    errors = []
    for dt in dts:
        env = param_env(neuron, dt)
        got = simulate(neuron, env, {"v": x0[0], "u": x0[1]}, [{"I": i} for i in izh_inputs(dt)], ["v", "u"])
        stride = round(dt / ref_dt)
        errors.append(float(np.max(np.abs(got[:, 0] - ref[stride - 1::stride, 0]))))
    assert np.max(ref[:, 0]) < -0.045  # stayed well below the 30 mV peak: no spike, no reset involved
    return errors


def test_izhikevich_euler_converges_at_order_one(std) -> None:
    """std Izhikevich (`method euler`): the max error in v over 40 ms against a fine RK4 solution halves
    with dt (observed orders within [0.85, 1.15]) and is below 0.1 mV at dt = 0.1 ms."""
    izh = std["Izhikevich"]
    assert izh.method == "euler"
    dts = [0.4e-3, 0.2e-3, 0.1e-3, 0.05e-3]
    errors = _izh_errors(izh, dts)
    assert all(0.85 < p < 1.15 for p in orders(errors)), (errors, orders(errors))
    assert errors[2] < 0.1e-3


def test_izhikevich_rk4_converges_at_order_four() -> None:
    """`method rk4` is honoured, and the compiler's RK4 step converges at order 4 (observed orders
    within [3.8, 4.4]) to the fine reference; at dt = 0.5 ms the error in v is below 1 uV."""
    izh = lower_one(IZH_RK4, "IzhRK4")
    assert izh.method == "rk4"
    dts = [0.5e-3, 0.25e-3, 0.125e-3]
    errors = _izh_errors(izh, dts)
    assert all(3.8 < p < 4.4 for p in orders(errors)), (errors, orders(errors))
    assert errors[0] < 1e-6


def adex_rhs(C=281e-12, g_L=30e-9, E_L=-70.6e-3, V_T=-50.4e-3, Delta_T=2e-3, tau_w=144e-3, a=4e-9):
    """Brette & Gerstner (2005), SI units."""
    def f(x: np.ndarray, current: float) -> np.ndarray:
        v, w = x
        dv = (-g_L * (v - E_L) + g_L * Delta_T * math.exp((v - V_T) / Delta_T) - w + current) / C
        dw = (a * (v - E_L) - w) / tau_w
        return np.array([dv, dw])
    return f


def test_adex_euler_converges_at_order_one(std) -> None:
    """std AdEx picks `euler` (exp(v) is not linear in v) and converges at order 1 to a fine RK4
    solution of the paper's equations (subthreshold steps of 250 pA and 450 pA, 60 ms); the error in v
    is below 0.05 mV at dt = 0.1 ms."""
    adex = std["AdEx"]
    assert adex.method == "euler"
    pattern = [(0.0, 4), (250e-12, 24), (450e-12, 20), (-100e-12, 12)]  # (input in A, ms): 60 ms

    def inputs(dt: float) -> list[float]:
        return [value for value, ms in pattern for _ in range(round(ms * 1e-3 / dt))]

    dts = [0.4e-3, 0.2e-3, 0.1e-3, 0.05e-3]
    ref_dt = dts[-1] / 4
    x0 = np.array([-70.6e-3, 0.0])
    ref = rk4_reference(adex_rhs(), x0, inputs(ref_dt), ref_dt, 8)
    assert np.max(ref[:, 0]) < -0.055
    errors = []
    for dt in dts:
        got = simulate(adex, param_env(adex, dt), {"v": x0[0], "w": x0[1]}, [{"I": i} for i in inputs(dt)], ["v"])
        stride = round(dt / ref_dt)
        errors.append(float(np.max(np.abs(got[:, 0] - ref[stride - 1::stride, 0]))))
    assert all(0.85 < p < 1.15 for p in orders(errors)), (errors, orders(errors))
    assert errors[2] < 0.05e-3


CONDUCTANCE = """
neuron Cond {
    param tau = 10 ms
    param tau_g = 5 ms
    param E_e = 2
    param a = 0.8
    state v = 0
    state g = 0
    input I = 0
    METHOD
    dv/dt = (-v + g * (E_e - v) + I) / tau
    dg/dt = (a * v - g) / tau_g
}
"""


def cond_rhs(tau=10e-3, tau_g=5e-3, E_e=2.0, a=0.8):
    def f(x: np.ndarray, current: float) -> np.ndarray:
        v, g = x
        return np.array([(-v + g * (E_e - v) + current) / tau, (a * v - g) / tau_g])
    return f


@pytest.mark.parametrize("method, dts, order, tolerance", [
    ("", [0.8e-3, 0.4e-3, 0.2e-3, 0.1e-3], 1, 0.025),         # default: exponential_euler (measured 0.0165)
    ("method euler", [0.8e-3, 0.4e-3, 0.2e-3, 0.1e-3], 1, 0.012),  # measured 0.0080
    ("method rk4", [1.6e-3, 0.8e-3, 0.4e-3], 4, 1e-5),        # measured 4.5e-6
])
def test_conductance_lif_converges(method, dts, order, tolerance) -> None:
    """A conductance-based neuron (the v coefficient depends on the state g, so not `exact`): the
    default exponential Euler, and forced Euler and RK4, converge to a fine RK4 solution at their
    orders (within 15%); at dt = 0.4 ms (0.8 ms for RK4) the max error in v is below `tolerance`."""
    neuron = lower_one(CONDUCTANCE.replace("METHOD", method), "Cond")
    assert neuron.method == (method.split()[1] if method else "exponential_euler")
    pattern = [(0.0, 1.6), (1.5, 16.0), (0.5, 9.6), (-0.8, 4.8)]  # (input, ms): 32 ms

    def inputs(dt: float) -> list[float]:
        return [value for value, ms in pattern for _ in range(round(ms * 1e-3 / dt))]

    ref_dt = 0.1e-3
    x0 = np.array([0.1, 0.05])
    ref = rk4_reference(cond_rhs(), x0, inputs(ref_dt), ref_dt, 64)
    errors = []
    for dt in dts:
        got = simulate(neuron, param_env(neuron, dt), {"v": x0[0], "g": x0[1]}, [{"I": i} for i in inputs(dt)],
                       ["v"])
        stride = round(dt / ref_dt)
        errors.append(float(np.max(np.abs(got[:, 0] - ref[stride - 1::stride, 0]))))
    assert all(abs(p - order) < 0.15 * order for p in orders(errors)), (errors, orders(errors))
    assert errors[1] < tolerance


# ---- method selection -------------------------------------------------------------------------

IZH_DEFAULT = IZH_RK4.replace("IzhRK4", "IzhDefault").replace("    method rk4\n", "")


def test_default_method_choice(std) -> None:
    """LANGUAGE.md §2: `exact` for a linear constant-coefficient system, else `exponential_euler` where
    each equation is linear in its own variable, else `euler`."""
    assert std["LIF"].method == "exact"
    assert std["CubaLIF"].method == "exact"
    assert std["ALIF"].method == "exact"
    assert std["IF"].method == "exact"
    assert lower_one(CONDUCTANCE.replace("METHOD", ""), "Cond").method == "exponential_euler"
    assert lower_one(IZH_DEFAULT, "IzhDefault").method == "euler"
    assert std["AdEx"].method == "euler"
    assert std["Leaky"].method is None  # discrete updates only


def test_requested_method_is_honoured() -> None:
    """`method rk4` and `method euler` replace the default, even for a linear system; `method exact` on
    a nonlinear system is an error that says why."""
    lif_text = """
neuron L {
    param tau = 10 ms
    state v = 0
    input I = 0
    METHOD
    dv/dt = (-v + I) / tau
}
"""
    for method in ("rk4", "euler", "exponential_euler", "exact"):
        assert lower_one(lif_text.replace("METHOD", f"method {method}"), "L").method == method
    euler = lower_one(lif_text.replace("METHOD", "method euler"), "L")
    env = param_env(euler, 1e-3)
    assert step(euler, {**env, "I": 1.0}, {"v": 0.0})["v"] == pytest.approx(0.1, rel=1e-12)
    rk4 = lower_one(lif_text.replace("METHOD", "method rk4"), "L")
    # RK4 on a linear ODE is the 4th-order Taylor polynomial of exp: 1 - h + h^2/2 - h^3/6 + h^4/24
    h = 0.1
    assert step(rk4, {**env, "I": 0.0}, {"v": 1.0})["v"] == pytest.approx(1 - h + h**2 / 2 - h**3 / 6 + h**4 / 24,
                                                                           rel=1e-12)
    with pytest.raises(snnspec.SpecError, match="not linear"):
        lower_one(IZH_RK4.replace("method rk4", "method exact"), "IzhRK4")


# ---- params that depend on dt -----------------------------------------------------------------


def test_dt_dependent_params_stay_expressions() -> None:
    """`param beta = exp(-dt / tau)` is kept as an expression of dt (the network's dt is not known when
    the neuron is lowered); `depends_on` lists dt and tau, and a param that uses neither lists nothing."""
    n = lower_one("""
neuron D {
    param tau = 5 ms
    param beta = exp(-dt / tau)
    param gain = (1 - beta) * 2
    param threshold = 1
    state mem = 0
    mem <- beta * mem + gain * I
    spike when mem > threshold
}
""", "D")
    params = {p.name: p for p in n.params}
    assert "dt" in {x.id for x in names(params["beta"].default)}
    assert set(params["beta"].depends_on) == {"dt", "tau"}
    assert set(params["gain"].depends_on) == {"beta"}
    assert params["threshold"].depends_on == ()
    assert [p.name for p in n.params].index("tau") < [p.name for p in n.params].index("beta")
    for dt in (1e-4, 1e-3):
        env = param_env(n, dt)
        assert env["beta"] == pytest.approx(math.exp(-dt / 5e-3), rel=1e-15)
        assert env["gain"] == pytest.approx(2 * (1 - math.exp(-dt / 5e-3)), rel=1e-12)
