"""ODEs to discrete updates over one step `dt`, with inputs held constant over the step.

As in Brian2's state updaters, each method is data: it says whether it `can_integrate` a system
and how to `integrate` it, and the default choice tries them in order (LANGUAGE.md §2):
`exact` for linear systems with constant coefficients, `exponential_euler` where each equation is
linear in its own variable, else `euler`. `rk4` is used only when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from ..ir import Method
from .budget import SymbolicTimeout, time_limit


@dataclass(frozen=True)
class System:
    """dX/dt = rhs[X] for the ODE states; every other symbol is held constant over the step."""

    states: tuple[sympy.Symbol, ...]
    rhs: Mapping[sympy.Symbol, sympy.Expr]
    dt: sympy.Symbol
    t: sympy.Symbol
    held: tuple[sympy.Symbol, ...] = ()  # inputs and other states, constant over the step


def _free_of(expr: sympy.Expr, symbols: set[sympy.Symbol]) -> bool:
    return not (expr.free_symbols & symbols)


def _linear_split(f: sympy.Expr, x: sympy.Symbol) -> tuple[sympy.Expr, sympy.Expr] | None:
    """f = a*x + b with a and b free of x, or None."""
    f = sympy.expand(f)
    a = sympy.diff(f, x)
    b = sympy.expand(f - a * x)
    if x in a.free_symbols or x in b.free_symbols:
        return None
    return a, b


class Exact:
    name: Method = "exact"

    def can_integrate(self, system: System) -> str | None:
        """None if it can; otherwise why not."""
        states = set(system.states)
        for x, f in system.rhs.items():
            if system.t in f.free_symbols:
                return f"d{x}/dt depends on t"
            f = sympy.expand(f)
            for y in system.states:
                coeff = sympy.diff(f, y)
                if not _free_of(coeff, states):
                    return f"d{x}/dt is not linear in the states"
            rest = f - sum(sympy.diff(f, y) * y for y in system.states)
            if not _free_of(sympy.expand(rest), states):
                return f"d{x}/dt is not linear in the states"
        return None

    def integrate(self, system: System) -> dict[sympy.Symbol, sympy.Expr]:
        n = len(system.states)
        rows = [sympy.expand(system.rhs[x]) for x in system.states]
        A = sympy.Matrix(n, n, lambda i, j: sympy.diff(rows[i], system.states[j]))
        b = sympy.Matrix([sympy.expand(rows[i] - sum(A[i, j] * system.states[j] for j in range(n)))
                          for i in range(n)])
        if A.is_diagonal():
            return {x: _scalar_exact(A[i, i], b[i], x, system.dt) for i, x in enumerate(system.states)}
        M = sympy.zeros(n + 1, n + 1)
        M[:n, :n] = A
        M[:n, n] = b
        X = sympy.Matrix(system.states)
        variables = [*system.states, *system.held]
        P = _triangular_exp(M, system.dt)
        if P is not None:  # only decaying exponentials already: a light tidy suffices
            new = P[:n, :n] * X + P[:n, n]
            return {x: _collect_linear(new[i], variables) for i, x in enumerate(system.states)}
        try:
            P = (M * system.dt).exp()
        except (NotImplementedError, sympy.matrices.exceptions.MatrixError) as err:  # no Jordan form found
            raise CannotIntegrate("sympy finds no closed form for its matrix exponential") from err
        new = P[:n, :n] * X + P[:n, n]
        roots = {p.base for p in A.atoms(sympy.Pow) if not p.exp.is_Integer}
        return {x: _tidy_linear(_real(new[i], roots), variables) for i, x in enumerate(system.states)}


def _triangular_exp(M: sympy.Matrix, dt: sympy.Symbol) -> sympy.Matrix | None:
    """exp(M dt) by Parlett's recurrence where M is triangular up to a reordering of the states
    (a chain of couplings with no cycle) with distinct diagonal entries; else None.

    Much faster than sympy's Jordan form (a 3-state chain takes seconds there) and gives each entry
    as divided differences of the decaying `exp(M[i, i] dt)`. (Golub & Van Loan, Alg. 9.1.1.)
    """
    n = M.rows
    needs = {i: {j for j in range(n) if j != i and M[i, j] != 0} for i in range(n)}
    order: list[int] = []  # each row placed after every row it needs: reversed, M becomes upper triangular
    while len(order) < n:
        ready = [i for i in range(n) if i not in order and needs[i] <= set(order)]
        if not ready:
            return None  # a cycle of couplings: not triangular
        order.extend(ready)
    order.reverse()
    T = M.extract(order, order)
    diag = [T[i, i] for i in range(n)]
    if any(sympy.cancel(diag[i] - diag[j]) == 0 for i in range(n) for j in range(i + 1, n)):
        return None  # repeated eigenvalue: the recurrence divides by zero
    F = sympy.diag(*(sympy.exp(d * dt) for d in diag))
    for p in range(1, n):
        for i in range(n - p):
            j = i + p
            s = T[i, j] * (F[j, j] - F[i, i]) + sum((T[i, k] * F[k, j] - F[i, k] * T[k, j] for k in range(i + 1, j)),
                                                    sympy.S.Zero)
            F[i, j] = s / (diag[j] - diag[i])
    P = sympy.zeros(n, n)
    for a, i in enumerate(order):
        for c, j in enumerate(order):
            P[i, j] = F[a, c]
    return P


def _real(expr: sympy.Expr, roots: set[sympy.Expr]) -> sympy.Expr:
    """A propagator entry in real form (`cos`/`sin` for complex eigenvalues), or CannotIntegrate where
    it takes a root of a new expression of unknown sign: its eigenvalues are then real for some params
    and complex for others, and the printed form would be NaN for one of the two (`sqrt(-k)`)."""
    if expr.has(sympy.I):
        expr = sympy.expand(sympy.expand_complex(expr))
        if expr.has(sympy.I):
            raise CannotIntegrate("its matrix exponential has no real closed form")
    for p in expr.atoms(sympy.Pow):
        if not p.exp.is_Integer and p.base not in roots and not p.base.is_nonnegative:
            raise CannotIntegrate(f"its eigenvalues are real or complex depending on the sign of {p.base}")
    return expr


def _tidy_linear(expr: sympy.Expr, variables: list[sympy.Symbol]) -> sympy.Expr:
    """Write a propagator row as sum(variable * coefficient), each coefficient using only decaying
    exponentials: sympy's matrix exponential leaves `exp(+dt/tau)` factors that overflow in float32."""
    expanded = sympy.powsimp(sympy.expand(expr), combine="exp")
    terms = sympy.collect(expanded, variables, evaluate=False)
    return sympy.Add(*(k * sympy.factor_terms(sympy.powsimp(sympy.expand(sympy.simplify(c)), combine="exp"))
                       for k, c in terms.items()))


def _collect_linear(expr: sympy.Expr, variables: list[sympy.Symbol]) -> sympy.Expr:
    """sum(variable * coefficient), each coefficient lightly tidied with every `exp(...)` kept as it is
    (`cancel` would turn `exp(-dt/tau)` into `1/exp(dt/tau)`, which overflows in float32)."""
    opaque = {e: sympy.Dummy(positive=True) for e in expr.atoms(sympy.exp)}
    back = {d: e for e, d in opaque.items()}
    terms = sympy.collect(sympy.expand(expr.xreplace(opaque)), variables, evaluate=False)
    return sympy.Add(*(k * _tidy(c).xreplace(back) for k, c in terms.items()))


def _scalar_exact(a: sympy.Expr, b: sympy.Expr, x: sympy.Symbol, dt: sympy.Symbol) -> sympy.Expr:
    if a == 0:
        return x + b * dt
    fixed = _tidy(-b / a)  # the value x relaxes to
    return fixed + (x - fixed) * sympy.exp(_tidy(a * dt))


def _tidy(expr: sympy.Expr) -> sympy.Expr:
    """A light, predictable simplification (full `simplify` rewrites exponentials unstably)."""
    return sympy.factor_terms(sympy.cancel(expr))


class ExponentialEuler:
    name: Method = "exponential_euler"

    def can_integrate(self, system: System) -> str | None:
        for x, f in system.rhs.items():
            if _linear_split(f, x) is None:
                return f"d{x}/dt is not linear in {x}"
        return None

    def integrate(self, system: System) -> dict[sympy.Symbol, sympy.Expr]:
        out = {}
        for x, f in system.rhs.items():
            split = _linear_split(f, x)
            assert split is not None
            a, b = (_tidy(e) for e in split)
            out[x] = _scalar_exact(a, b, x, system.dt)
        return out


class Euler:
    name: Method = "euler"

    def can_integrate(self, system: System) -> str | None:
        return None

    def integrate(self, system: System) -> dict[sympy.Symbol, sympy.Expr]:
        return {x: x + system.dt * f for x, f in system.rhs.items()}


class RK4:
    name: Method = "rk4"

    def can_integrate(self, system: System) -> str | None:
        return None

    def integrate(self, system: System) -> dict[sympy.Symbol, sympy.Expr]:
        dt, t = system.dt, system.t

        def f(values: Mapping[sympy.Symbol, sympy.Expr], time: sympy.Expr) -> dict[sympy.Symbol, sympy.Expr]:
            subs = {**values, t: time}
            return {x: system.rhs[x].xreplace(subs) for x in system.states}

        x0 = {x: x for x in system.states}
        k1 = f(x0, t)
        k2 = f({x: x + dt / 2 * k1[x] for x in x0}, t + dt / 2)
        k3 = f({x: x + dt / 2 * k2[x] for x in x0}, t + dt / 2)
        k4 = f({x: x + dt * k3[x] for x in x0}, t + dt)
        return {x: x + dt / 6 * (k1[x] + 2 * k2[x] + 2 * k3[x] + k4[x]) for x in x0}


METHODS = {m.name: m for m in (Exact(), ExponentialEuler(), Euler(), RK4())}
DEFAULT_ORDER: tuple[Method, ...] = ("exact", "exponential_euler", "euler")


@dataclass(frozen=True)
class Integrated:
    method: Method
    updates: dict[sympy.Symbol, sympy.Expr]
    note: str | None = None  # why a method was skipped or abandoned


class CannotIntegrate(Exception):
    """The requested method cannot integrate the system; the message says why."""


def integrate(system: System, requested: Method | None) -> Integrated:
    """Integrate with `requested`, or the first default method that can and finishes in time."""
    notes: list[str] = []
    for name in (requested,) if requested else DEFAULT_ORDER:
        method = METHODS[name]
        try:
            with time_limit():
                why = method.can_integrate(system)
                if why is None:
                    try:
                        return Integrated(method.name, method.integrate(system), "; ".join(notes) or None)
                    except CannotIntegrate as err:  # found out only while integrating
                        why = str(err)
                        notes.append(f"{name} does not apply: {why}")
                if requested:
                    raise CannotIntegrate(f"method {name} cannot integrate this neuron: {why}")
                continue
        except SymbolicTimeout:
            if requested and name != "euler":
                notes.append(f"{name} ran past the symbolic time limit; fell back to euler")
                return Integrated("euler", METHODS["euler"].integrate(system), "; ".join(notes))
            notes.append(f"{name} ran past the symbolic time limit")
    return Integrated("euler", METHODS["euler"].integrate(system), "; ".join(notes) or None)
