"""ODEs to discrete updates over one step `dt`, with inputs held constant over the step.

As in Brian2's state updaters, each method is data: it says whether it `can_integrate` a system
and how to `integrate` it, and the default choice tries them in order (LANGUAGE.md §2):
`exact` for linear systems with constant coefficients, `exponential_euler` where each equation is
linear in its own variable, else `euler`. `rk4` is used only when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy

from ..ir import Method
from ..symbolic import Detach
from .budget import SymbolicTimeout, time_limit


@dataclass(frozen=True)
class Step:
    """One step of a method: the new value of each state, over `lets` (locals computed first, in order)."""

    updates: dict[sympy.Symbol, sympy.Expr]
    lets: dict[sympy.Symbol, sympy.Expr] = field(default_factory=dict)
    owners: dict[sympy.Symbol, sympy.Symbol] = field(default_factory=dict)  # the state a let is a stage of


@dataclass(frozen=True)
class System:
    """dX/dt = rhs[X] for the ODE states; every other symbol is held constant over the step."""

    states: tuple[sympy.Symbol, ...]
    rhs: Mapping[sympy.Symbol, sympy.Expr]
    dt: sympy.Symbol
    t: sympy.Symbol
    held: tuple[sympy.Symbol, ...] = ()  # inputs and other states, constant over the step
    taken: frozenset[str] = frozenset()  # names in use: the locals a method introduces avoid them


def _taken(system: System) -> set[str]:
    """Every name a new local must avoid."""
    used = {str(x) for x in (*system.states, *system.held, system.dt, system.t)}
    return used | set(system.taken) | {str(x) for f in system.rhs.values() for x in f.free_symbols}


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

    def integrate(self, system: System) -> Step:
        n = len(system.states)
        rows = [sympy.expand(system.rhs[x]) for x in system.states]
        A = sympy.Matrix(n, n, lambda i, j: sympy.diff(rows[i], system.states[j]))
        b = sympy.Matrix([sympy.expand(rows[i] - sum(A[i, j] * system.states[j] for j in range(n)))
                          for i in range(n)])
        if A.is_diagonal():
            return Step({x: _scalar_exact(A[i, i], b[i], x, system.dt) for i, x in enumerate(system.states)})
        M = sympy.zeros(n + 1, n + 1)
        M[:n, :n] = A
        M[:n, n] = b
        X = sympy.Matrix(system.states)
        variables = [*system.states, *system.held]
        triangular = _triangular_exp(M, system.dt, [*map(str, system.states), "b"], _taken(system))
        if triangular is not None:  # only decaying exponentials already: a light tidy suffices
            P, lets = triangular
            new = P[:n, :n] * X + P[:n, n]
            return Step({x: _collect_linear(new[i], variables) for i, x in enumerate(system.states)}, lets)
        try:
            P = (M * system.dt).exp()
        except (NotImplementedError, sympy.matrices.exceptions.MatrixError) as err:  # no Jordan form found
            raise CannotIntegrate("sympy finds no closed form for its matrix exponential") from err
        new = P[:n, :n] * X + P[:n, n]
        roots = {p.base for p in A.atoms(sympy.Pow) if not p.exp.is_Integer}
        return Step({x: _tidy_linear(_real(new[i], roots), variables) for i, x in enumerate(system.states)})


def _triangular_exp(M: sympy.Matrix, dt: sympy.Symbol, labels: list[str], taken: set[str]
                    ) -> tuple[sympy.Matrix, dict[sympy.Symbol, sympy.Expr]] | None:
    """(exp(M dt), the lets it reads) where M is triangular up to a reordering of the states (a
    chain of couplings with no cycle) with diagonal entries that differ symbolically; else None.

    Each entry is a sum over the chain's paths of divided differences of `exp(d dt)` over the
    diagonal entries d on the path (Higham, Functions of Matrices, Thm 4.11), much faster than
    sympy's Jordan form. Two entries that can still be equal for some param values (`tau_syn =
    tau_mem`) make a removable singularity: `_DividedDifferences` never divides by such a
    difference, and the lets it adds hold the guarded factors (`labels` name the rows).
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
        return None  # repeated eigenvalue: the divided differences are derivatives (Jordan form)
    dd = _DividedDifferences(diag, dt, [labels[i] for i in order], taken)

    def paths(i: int, j: int) -> list[tuple[int, ...]]:
        if i == j:
            return [(i,)]
        return [(i, *rest) for k in range(i + 1, j + 1) if T[i, k] != 0 for rest in paths(k, j)]

    P = sympy.zeros(n, n)
    for a, i in enumerate(order):
        for c, j in enumerate(order):
            if a <= c:
                P[i, j] = sum((sympy.Mul(*(T[p[k], p[k + 1]] for k in range(len(p) - 1))) * dd(p)
                               for p in paths(a, c)), sympy.S.Zero)
    return P, dd.lets


TANHC_NEAR = 0.05  # |w| below it: tanh(w)/w by its Taylor series (error < 1e-12), above it directly


class _DividedDifferences:
    """Divided differences of `exp(x dt)` over the diagonal entries `diag` (by index).

    Recursively `f[S] = (f[S - {a}] - f[S - {b}]) / (d_b - d_a)`, choosing a pair whose difference
    can never be zero (`-1/tau` against 0). Where every pair's can (`1/tau_syn - 1/tau_mem`), two
    points use `f[a, b] = dt (exp(d_a dt) + exp(d_b dt)) / 2 * tanh(w) / w` with `w = (d_a - d_b) dt / 2`,
    exact and finite at equality: tanh(w)/w is a let that switches to its Taylor series near 0 with a
    detached switch, so its value and gradient are finite everywhere (no 0 * inf in autograd either).
    """

    def __init__(self, diag: list[sympy.Expr], dt: sympy.Symbol, labels: list[str], taken: set[str]):
        self.diag, self.dt, self.labels, self.taken = diag, dt, labels, taken
        self.lets: dict[sympy.Symbol, sympy.Expr] = {}
        self.memo: dict[tuple[int, ...], sympy.Expr] = {}

    def __call__(self, points: tuple[int, ...]) -> sympy.Expr:
        key = tuple(sorted(points))
        if key not in self.memo:
            self.memo[key] = self._compute(key)
        return self.memo[key]

    def _compute(self, key: tuple[int, ...]) -> sympy.Expr:
        d = self.diag
        if len(key) == 1:
            return sympy.exp(_tidy(d[key[0]] * self.dt))
        pairs = [(a, b) for k, a in enumerate(key) for b in key[k + 1:]]
        safe = [(a, b) for a, b in pairs if _never_zero(d[a] - d[b])]
        if len(key) == 2 and not safe:
            a, b = key
            return self.dt * (self((a,)) + self((b,))) / 2 * self._tanhc(a, b)
        a, b = safe[0] if safe else pairs[0]  # no safe pair among 3+: a singularity remains (see language-notes)
        rest_a = tuple(k for k in key if k != a)
        rest_b = tuple(k for k in key if k != b)
        return (self(rest_a) - self(rest_b)) / _tidy(d[b] - d[a])

    def _tanhc(self, a: int, b: int) -> sympy.Symbol:
        """The let `tanhc_A_B` = tanh(w)/w for this pair, with its switch and `w` as lets before it."""
        suffix = f"{self.labels[a]}_{self.labels[b]}"
        w, near, tanhc = (sympy.Symbol(_fresh(f"{kind}_{suffix}", self.taken), real=True)
                          for kind in ("w", "near", "tanhc"))
        self.lets[w] = _tidy((self.diag[a] - self.diag[b]) * self.dt / 2)
        self.lets[near] = Detach(sympy.Heaviside(sympy.Float(TANHC_NEAR) - sympy.Abs(w), 0))
        series = 1 - w**2 / 3 + 2 * w**4 / 15 - 17 * w**6 / 315
        self.lets[tanhc] = (1 - near) * sympy.tanh(w + near) / (w + near) + near * series
        return tanhc


def _never_zero(expr: sympy.Expr) -> bool:
    """Whether `expr` is nonzero for every value of its symbols: its numerator is a nonzero number."""
    numer, _ = sympy.fraction(sympy.cancel(sympy.together(expr)))
    return bool(numer.is_number and numer != 0)


def _fresh(name: str, taken: set[str]) -> str:
    """`name`, or with underscores appended, so that it is not in `taken` (which it then joins)."""
    while name in taken:
        name += "_"
    taken.add(name)
    return name


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

    def integrate(self, system: System) -> Step:
        out = {}
        for x, f in system.rhs.items():
            split = _linear_split(f, x)
            assert split is not None
            a, b = (_tidy(e) for e in split)
            out[x] = _scalar_exact(a, b, x, system.dt)
        return Step(out)


class Euler:
    name: Method = "euler"

    def can_integrate(self, system: System) -> str | None:
        return None

    def integrate(self, system: System) -> Step:
        return Step({x: x + system.dt * f for x, f in system.rhs.items()})


class RK4:
    name: Method = "rk4"

    def can_integrate(self, system: System) -> str | None:
        return None

    def integrate(self, system: System) -> Step:
        """The classic four stages, each a local k1..k4 per state: expanded into one expression
        with no common subexpressions, a nonlinear step grows to tens of thousands of characters
        (AdEx, Hodgkin-Huxley) and its derivative past any time limit."""
        dt, t = system.dt, system.t
        taken = _taken(system)
        lets: dict[sympy.Symbol, sympy.Expr] = {}
        owners: dict[sympy.Symbol, sympy.Symbol] = {}

        def stage(i: int, values: Mapping[sympy.Symbol, sympy.Expr],
                  time: sympy.Expr) -> dict[sympy.Symbol, sympy.Symbol]:
            out = {}
            for x in system.states:
                k = sympy.Symbol(_fresh(f"k{i}_{x}", taken), real=True)
                lets[k] = system.rhs[x].xreplace({**values, t: time})
                owners[k] = x
                out[x] = k
            return out

        x0 = {x: x for x in system.states}
        k1 = stage(1, x0, t)
        k2 = stage(2, {x: x + dt / 2 * k1[x] for x in x0}, t + dt / 2)
        k3 = stage(3, {x: x + dt / 2 * k2[x] for x in x0}, t + dt / 2)
        k4 = stage(4, {x: x + dt * k3[x] for x in x0}, t + dt)
        return Step({x: x + dt / 6 * (k1[x] + 2 * k2[x] + 2 * k3[x] + k4[x]) for x in x0}, lets, owners)


METHODS = {m.name: m for m in (Exact(), ExponentialEuler(), Euler(), RK4())}
DEFAULT_ORDER: tuple[Method, ...] = ("exact", "exponential_euler", "euler")


@dataclass(frozen=True)
class Integrated:
    method: Method
    updates: dict[sympy.Symbol, sympy.Expr]
    note: str | None = None  # why a method was skipped or abandoned
    lets: dict[sympy.Symbol, sympy.Expr] = field(default_factory=dict)  # locals the updates read, in order
    rates: dict[sympy.Symbol, sympy.Expr] = field(default_factory=dict)  # euler only: see `decay_rates`
    owners: dict[sympy.Symbol, sympy.Symbol] = field(default_factory=dict)  # see `Step.owners`


class CannotIntegrate(Exception):
    """The requested method cannot integrate the system; the message says why."""


def _integrated(name: Method, system: System, notes: list[str]) -> Integrated:
    step = METHODS[name].integrate(system)
    rates = decay_rates(system) if name == "euler" else {}
    return Integrated(name, step.updates, "; ".join(notes) or None, step.lets, rates, step.owners)


def decay_rates(system: System) -> dict[sympy.Symbol, sympy.Expr]:
    """-d(rhs)/dX for each state X where that is constant over a run (params and dt only): the
    rate `1/tau` of a linear decay `-X/tau`, which makes forward Euler unstable once dt * rate >= 2.
    Elsewhere (nonlinear, or a rate that depends on inputs) stability is not known before running."""
    varying = {*system.states, *system.held, system.t}
    out = {}
    for x, f in system.rhs.items():
        rate = _tidy(-sympy.diff(f, x))
        if rate != 0 and not (rate.free_symbols & varying):
            out[x] = rate
    return out


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
                        return _integrated(method.name, system, notes)
                    except CannotIntegrate as err:  # found out only while integrating
                        why = str(err)
                        notes.append(f"{name} does not apply: {why}")
                if requested:
                    raise CannotIntegrate(f"method {name} cannot integrate this neuron: {why}")
                continue
        except SymbolicTimeout:
            if requested and name != "euler":
                notes.append(f"{name} ran past the symbolic time limit; fell back to euler")
                return _integrated("euler", system, notes)
            notes.append(f"{name} ran past the symbolic time limit")
    return _integrated("euler", system, notes)
