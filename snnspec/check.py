"""Checks: from parsed files to a validated `ir.Spec`, or diagnostics saying what is wrong.

Every declaration is checked once, in the scope of the file that declares it (its own names,
what it imports, and the implicit `std/surrogates.snn`). Checks collect diagnostics and go on,
so one run reports every problem it can find.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Union

from . import ir
from .dependency import order_by_dependency
from .diagnostics import Diagnostics, did_you_mean
from .dims import Scope, dim_of, expect_dim, uses_units
from .expr import CONSTANTS, FUNCTIONS, EvalError, evaluate, names, walk
from .loader import STD_SURROGATES, Program
from .rule_scope import may_change, scope_of, unreadable
from .units import DIMENSIONLESS, TIME, UNITS, Dim, dim_name

Decl = Union[ir.Surrogate, ir.Neuron, ir.Rule, ir.Network]
BUILTINS = {"dt", "t", "pi", "spiked"}
FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max: what a generated module can hold
# the words that begin a neuron's statements: reserved as names inside a neuron, where `spike` also
# names the spike output (`h.spike`); elsewhere a keyword of another block is a plain name
NEURON_KEYWORDS = {"param", "state", "input", "let", "method", "refractory", "spike", "on"}
_KIND = {ir.Surrogate: "surrogate", ir.Neuron: "neuron", ir.Rule: "rule", ir.Network: "network"}


def kind_of(decl: Decl) -> str:
    return _KIND[type(decl)]


def check_program(program: Program, diags: Diagnostics) -> ir.Spec:
    """Check every declaration the root file can see, and collect them into one `Spec`."""
    return _Checker(program, diags).run()


class _Checker:
    def __init__(self, program: Program, diags: Diagnostics):
        self.program = program
        self.diags = diags
        self.own: dict[str, dict[str, Decl]] = {}
        self.visible: dict[str, dict[str, Decl]] = {}
        self.checked: dict[int, Any] = {}

    # -- scopes
    def run(self) -> ir.Spec:
        for file, module in self.program.modules.items():
            table: dict[str, Decl] = {}
            for decl in module.declarations:
                if decl.name in table:
                    first = table[decl.name]
                    line = first.span.line if first.span else "?"
                    self.diags.error(f"'{decl.name}' is declared twice", decl.span,
                                     f"the first {kind_of(first)} '{decl.name}' is on line {line}; rename one")
                    continue
                table[decl.name] = decl
            self.own[file] = table
        for file in self.program.modules:
            self.visible[file] = self._visible(file)
        spec: dict[str, dict[str, Any]] = {"surrogates": {}, "neurons": {}, "rules": {}, "networks": {}}
        root = self.program.root
        for decl in self.visible.get(root, {}).values():
            self._collect(decl, spec)
        return ir.Spec(file=root, **spec)

    def _visible(self, file: str) -> dict[str, Decl]:
        table = dict(self.own[file])
        imported: dict[str, str] = {}
        for imp, target in self.program.imports.get(file, []):
            source = self.own.get(target)
            if source is None:
                continue  # already reported: unreadable or unparsable
            wanted = [(n.id, n.span) for n in imp.names] if imp.names is not None else [(n, imp.span) for n in source]
            for name, span in wanted:
                if name not in source:
                    self.diags.error(f"'{name}' is not declared in '{imp.path}'", span,
                                     did_you_mean(name, source) or f"it declares: {', '.join(source) or 'nothing'}")
                    continue
                if name in imported:
                    self.diags.error(f"'{name}' is imported twice", span,
                                     f"it is already imported from '{imported[name]}'; import it once")
                    continue
                if name in table and table[name] is not source[name]:
                    self.diags.error(f"'{name}' is both declared in this file and imported", span,
                                     "rename one of them, or import only one")
                    continue
                table[name] = source[name]
                imported[name] = imp.path
        for name, decl in self.own.get(STD_SURROGATES, {}).items():
            table.setdefault(name, decl)
        return table

    def _file_of(self, decl: Decl) -> str:
        return decl.span.file if decl.span else self.program.root

    def _collect(self, decl: Decl, spec: dict[str, dict[str, Any]]) -> None:
        checked = self.check(decl)
        bucket = spec[kind_of(decl) + "s"]
        if decl.name in bucket:
            if bucket[decl.name] != checked:
                self.diags.error(f"two different declarations named '{decl.name}' are used together", decl.span,
                                 "rename one of them")
            return
        bucket[decl.name] = checked
        for dep in self.dependencies(decl):
            self._collect(dep, spec)

    def dependencies(self, decl: Decl) -> list[Decl]:
        scope = self.visible.get(self._file_of(decl), {})
        wanted: list[str] = []
        if isinstance(decl, ir.Neuron) and decl.spike is not None:
            wanted.append(decl.spike.surrogate.name)
        if isinstance(decl, ir.Network):
            wanted += [layer.neuron for layer in decl.layers]
            wanted += [p.learn.name for p in decl.paths if p.learn is not None]
        return [scope[n] for n in wanted if n in scope]

    def lookup(self, decl: Decl, name: str, want: type, span: ir.Span | None, what: str) -> Any:
        """The declaration `name` of type `want` visible where `decl` is declared, or None (reported)."""
        scope = self.visible.get(self._file_of(decl), {})
        found = scope.get(name)
        if isinstance(found, want):
            return found
        candidates = [n for n, d in scope.items() if isinstance(d, want)]
        if found is not None:
            self.diags.error(f"'{name}' is a {kind_of(found)}, not a {what}", span)
        else:
            self.diags.error(f"unknown {what} '{name}'", span,
                             did_you_mean(name, candidates) or _import_hint(what))
        return None

    def check(self, decl: Decl) -> Any:
        key = id(decl)
        if key not in self.checked:
            self.checked[key] = decl  # guards against re-entry
            if isinstance(decl, ir.Surrogate):
                self.checked[key] = check_surrogate(decl, self.diags)
            elif isinstance(decl, ir.Neuron):
                self.checked[key] = check_neuron(decl, self, self.diags)
            elif isinstance(decl, ir.Rule):
                self.checked[key] = check_rule(decl, self.diags)
            else:
                from .check_network import check_network

                self.checked[key] = check_network(decl, self, self.diags)
        return self.checked[key]


def _import_hint(what: str) -> str | None:
    if what == "neuron":
        return 'standard neurons need an import: from "std/neurons.snn" import Leaky'
    if what == "rule":
        return 'standard rules need an import: from "std/rules.snn" import STDP'
    return None


# ---- shared pieces ------------------------------------------------------------------------------


def check_local_names(decls: Iterable[tuple[str, str, ir.Span | None]], diags: Diagnostics,
                      reserved: set[str] = BUILTINS, keywords: Iterable[str] = ()) -> dict[str, str]:
    """Names declared in one block: report duplicates, reserved names and the block's `keywords`;
    return name -> kind."""
    kinds: dict[str, str] = {}
    for name, kind, span in decls:
        if name in keywords:
            diags.error(f"`{name}` is a keyword; rename the {kind}", span,
                        f"in a neuron a line that starts with `{name}` is a `{name} ...` statement; "
                        f"write e.g. `{name}_{kind}`")
        elif name in reserved or name in CONSTANTS:
            diags.error(f"'{name}' is a built-in name and cannot be declared", span, "choose another name")
        elif name in kinds:
            diags.error(f"'{name}' is declared twice (as {kinds[name]} and as {kind})", span, "rename one of them")
        else:
            if name in UNITS:
                diags.warning(f"{kind} '{name}' shadows the unit '{name}' in this block", span)
            kinds[name] = kind
    return kinds


def _in_cycle(expr: ir.Expr, items: Mapping[str, object], done: Mapping[str, Dim | None]) -> bool:
    """Whether `expr` uses an item not yet resolved: after `order_by_dependency` that means a cycle."""
    return any(m.id in items and m.id not in done for m in names(expr))


def check_params(params: Iterable[ir.Param], dt_dim: Dim, kinds: dict[str, str], diags: Diagnostics
                 ) -> dict[str, Dim | None]:
    """Infer each param's dimension from its default (in dependency order) and check its range.

    A param whose default has an error gets None, so what uses it is not reported a second time.
    """
    params = list(params)
    by_name = {p.name: p for p in params}
    order = order_by_dependency({p.name: p.default for p in params}, "param", {p.name: p.span for p in params}, diags)
    dims: dict[str, Dim | None] = {}
    elsewhere = {n: k for n, k in kinds.items() if k != "param"} | {"t": "the time", "spiked": "the spike state"}
    for name in order:
        p = by_name[name]
        if _in_cycle(p.default, by_name, dims):
            dims[name] = None  # the cycle is reported; its names are not unknown
            continue
        scope = Scope({**dims, "dt": dt_dim}, "a param's default", elsewhere)
        dims[name] = dim_of(p.default, scope, diags)
    range_scope = Scope({**dims, "dt": dt_dim}, "a param's range", elsewhere)
    for p in params:
        if (p.low is None) != (p.high is None):
            continue
        want = dims[p.name]
        for bound in (p.low, p.high):
            if bound is not None and want is not None:
                expect_dim(bound, want, range_scope, diags, f"the range of '{p.name}'")
        if p.per_neuron and not p.learnable:
            diags.error(f"'per neuron' needs 'learnable' on param '{p.name}'", p.span, "write `learnable per neuron`")
    return dims


def check_assign(a: ir.Assign, targets: Mapping[str, Dim | None], kinds: Mapping[str, str], scope: Scope,
                 diags: Diagnostics, where: str) -> None:
    if a.var not in targets:
        if a.var in kinds:
            diags.error(f"cannot assign to {kinds[a.var]} '{a.var}' in {where}", a.span,
                        "only states can change" if kinds[a.var] == "param" else None)
        elif a.var == "spiked":
            diags.error("cannot assign to 'spiked'; it is the previous step's spike", a.span)
        else:
            diags.error(f"unknown name '{a.var}'", a.span, did_you_mean(a.var, targets))
        dim_of(a.value, scope, diags)
        return
    want = targets[a.var] if a.op != "*=" else DIMENSIONLESS
    if want is None:
        dim_of(a.value, scope, diags)
        return
    expect_dim(a.value, want, scope, diags, f"'{a.var} {a.op}'")


def check_equations(equations: Iterable[ir.Equation], states: Mapping[str, Dim | None], kinds: Mapping[str, str],
                    scope: Scope, dt_dim: Dim, diags: Diagnostics) -> None:
    seen: dict[str, ir.Equation] = {}
    for eq in equations:
        lhs = f"d{eq.var}/dt" if eq.form == "ode" else f"{eq.var} <-"
        if eq.var not in states:
            kind = kinds.get(eq.var)
            if kind is not None:
                what = "dynamics" if eq.form == "ode" else "an update"
                diags.error(f"cannot give {what} to {kind} '{eq.var}'; only states change over time", eq.span,
                            f"declare it as `state {eq.var} = ...`" if kind in ("param", "let") else None)
            elif eq.var == "spiked":
                diags.error("'spiked' is built in and cannot be updated", eq.span)
            else:
                diags.error(f"unknown state '{eq.var}'", eq.span,
                            did_you_mean(eq.var, states) or f"declare it: `state {eq.var} = 0`")
                dim_of(eq.rhs, scope.with_names({eq.var: None}), diags)  # its use is not a second error
                continue
            dim_of(eq.rhs, scope, diags)
            continue
        if eq.var in seen:
            first = seen[eq.var].span
            diags.error(f"state '{eq.var}' has two equations", eq.span,
                        f"the first is on line {first.line if first else '?'}")
            continue
        seen[eq.var] = eq
        state = states[eq.var]
        got = dim_of(eq.rhs, scope, diags)
        if state is None:
            continue
        want = state / dt_dim if eq.form == "ode" else state
        if got is not None and got != want:
            diags.error(f"{lhs} has {dim_name(want)} but the right side has {dim_name(got)}", eq.rhs.span,
                        _ode_hint(eq, want, got, dt_dim))


def _ode_hint(eq: ir.Equation, want: Dim, got: Dim, dt_dim: Dim) -> str | None:
    if eq.form == "ode" and got == want * dt_dim and not dt_dim.dimensionless:
        return "divide the right side by a time constant"
    return None


def block_uses_units(exprs: Iterable[ir.Expr | None], local: set[str]) -> bool:
    return any(e is not None and uses_units(e, local) for e in exprs)


# ---- surrogates ---------------------------------------------------------------------------------


def check_surrogate(s: ir.Surrogate, diags: Diagnostics) -> ir.Surrogate:
    kinds = check_local_names([(s.arg, "argument", s.span), *((h.name, "hyper-parameter", h.span) for h in s.hyper)],
                              diags, reserved={"pi"})
    scope = Scope({n: DIMENSIONLESS for n in kinds}, f"surrogate '{s.name}'")
    for h in s.hyper:
        default_scope = Scope({}, "a hyper-parameter's default")
        expect_dim(h.value, DIMENSIONLESS, default_scope, diags, f"hyper-parameter '{h.name}'")
    expect_dim(s.expr, DIMENSIONLESS, scope, diags, f"`{s.form}`")
    check_numbers([*((h.value, f"hyper-parameter '{h.name}'") for h in s.hyper), (s.expr, f"`{s.form}`")], diags)
    return s


# ---- neurons ------------------------------------------------------------------------------------


def _position(item: tuple[str, str, ir.Span | None]) -> tuple[int, int]:
    """Where a declaration is, so duplicates are reported at the later one."""
    span = item[2]
    return (span.line, span.column) if span else (0, 0)


def check_neuron(n: ir.Neuron, checker: _Checker, diags: Diagnostics) -> ir.Neuron:
    inputs = n.inputs or (ir.Input(name="I", span=n.span),)
    declared = [*((p.name, "param", p.span) for p in n.params), *((s.name, "state", s.span) for s in n.states),
                *((x.name, "let", x.span) for x in n.lets)]
    for name, kind, span in declared if not n.inputs else []:
        if name == "I":
            diags.error(f"{kind} 'I' clashes with the input 'I' of a neuron without `input` lines", span,
                        "rename it, or declare the neuron's inputs: `input J = 0`")
    kinds = check_local_names(sorted([*declared, *((i.name, "input", i.span) for i in inputs if n.inputs or
                                                   all(name != "I" for name, _, _ in declared))], key=_position), diags,
                              keywords=NEURON_KEYWORDS)
    local = set(kinds)
    exprs: list[ir.Expr | None] = [p.default for p in n.params] + [p.low for p in n.params] + [p.high for p in n.params]
    exprs += [s.init for s in n.states] + [i.default for i in inputs] + [x.expr for x in n.lets]
    exprs += [e.rhs for e in n.equations] + [n.refractory]
    if n.spike:
        exprs += [n.spike.lhs, n.spike.rhs]
    if n.on_spike:
        exprs += [a.value for a in n.on_spike.body]
    has_units = block_uses_units(exprs, local)
    dt_dim = TIME if has_units else DIMENSIONLESS

    pdims = check_params(n.params, dt_dim, kinds, diags)
    const_scope = Scope({**pdims, "dt": dt_dim}, "an initial value",
                        {k: v for k, v in kinds.items() if v != "param"}
                        | {"t": "the time", "spiked": "the spike state"})
    sdims = {s.name: dim_of(s.init, const_scope, diags) for s in n.states}
    idims = {i.name: dim_of(i.default, Scope({}, "an input's default"), diags) if i.default else DIMENSIONLESS
             for i in inputs}

    base = {**pdims, **sdims, **idims, "dt": dt_dim, "t": TIME if has_units else DIMENSIONLESS, "spiked": DIMENSIONLESS}
    let_exprs = {x.name: x.expr for x in n.lets}
    order = order_by_dependency(let_exprs, "let", {x.name: x.span for x in n.lets}, diags)
    ldims: dict[str, Dim | None] = {}
    for name in order:
        if _in_cycle(let_exprs[name], let_exprs, ldims):
            ldims[name] = None  # the cycle is reported; its names are not unknown
            continue
        ldims[name] = dim_of(let_exprs[name], Scope({**base, **ldims}), diags)
    scope = Scope({**base, **ldims})

    check_equations(n.equations, sdims, kinds, scope, dt_dim, diags)
    if n.spike is not None:
        left, right = dim_of(n.spike.lhs, scope, diags), dim_of(n.spike.rhs, scope, diags)
        if left is not None and right is not None and left != right:
            diags.error(f"cannot compare {dim_name(left)} with {dim_name(right)}",
                        _between(n.spike.lhs.span, n.spike.rhs.span) or n.spike.span,
                        "both sides of the spike condition must have the same dimension")
        _check_surrogate_ref(n, n.spike.surrogate, pdims, checker, diags)
    if n.on_spike is not None:
        if n.spike is None:
            diags.error("`on spike` in a neuron that never spikes", n.on_spike.span, "add `spike when ...`")
        for a in n.on_spike.body:
            check_assign(a, sdims, kinds, scope, diags, "`on spike`")
    if n.refractory is not None:
        if n.spike is None:
            diags.error("`refractory` in a neuron that never spikes", n.refractory.span, "add `spike when ...`")
        if expect_dim(n.refractory, dt_dim, Scope({**pdims, "dt": dt_dim}, "a refractory period"), diags,
                      "the refractory period") and in_numbers(n.refractory):
            period = constant(n.refractory, {}, Diagnostics(), "the refractory period")  # reported by check_numbers
            if period is not None and period < 0:
                diags.error(f"the refractory period must not be negative, got {period:g}", n.refractory.span,
                            "give a duration of 0 or more (`refractory 2 ms`, or in steps without units)")
    if not n.states and n.spike is None:
        diags.error(f"neuron '{n.name}' has no state and no spike: it computes nothing", n.span,
                    "declare a state and its update (`state v = 0` and `v <- 0.9 * v + I`), "
                    "or a spike condition (`spike when I > 1`)")
    if n.method is not None and not any(e.form == "ode" for e in n.equations):
        diags.warning(f"`method {n.method}` has no effect: the neuron has no `dX/dt` equation", n.span)
    step = [*(x.expr for x in n.lets), *(e.rhs for e in n.equations)]
    if n.spike is None:
        for read in (x for e in step for x in names(e) if x.id == "spiked"):
            diags.error(f"neuron '{n.name}' reads 'spiked' but never spikes", read.span,
                        "add `spike when ...`, or remove 'spiked' (it would always be 0)")
    step += [p.default for p in n.params] + ([n.spike.lhs, n.spike.rhs] if n.spike else [])
    check_zero_divisors(n, [*step, *((a.value for a in n.on_spike.body) if n.on_spike else ())], diags)
    check_numbers(_numbers(n), diags)

    return n.model_copy(update={
        "inputs": tuple(i.model_copy(update={"dim": _dim_text(idims, i.name)}) for i in inputs),
        "params": tuple(p.model_copy(update={"dim": _dim_text(pdims, p.name)}) for p in n.params),
        "states": tuple(s.model_copy(update={"dim": _dim_text(sdims, s.name)}) for s in n.states),
        "lets": tuple(x.model_copy(update={"dim": _dim_text(ldims, x.name)}) for x in n.lets),
        "uses_units": has_units,
    })


def check_zero_divisors(n: ir.Neuron, exprs: Iterable[ir.Expr], diags: Diagnostics) -> None:
    """A step that divides by a param whose default is 0 (`tau = 0`): an error here, where the
    backends would give inf, nan or ZeroDivisionError."""
    defaults: dict[str, float] = {}
    for p in n.params:
        try:
            defaults[p.name] = evaluate(p.default, defaults)
        except (EvalError, KeyError):
            continue
    for expr in exprs:
        for node in walk(expr):
            if not (isinstance(node, ir.BinOp) and node.op == "/" and isinstance(node.right, ir.Name)):
                continue
            name = node.right.id
            if name in defaults and defaults[name] == 0:
                diags.error(f"param '{name}' is 0, and the neuron divides by it", node.right.span,
                            f"give '{name}' a nonzero default, e.g. `param {name} = 1`")


def _between(first: ir.Span | None, last: ir.Span | None) -> ir.Span | None:
    """The span from the start of `first` to the end of `last`."""
    if first is None or last is None:
        return None
    return first.model_copy(update={"end_line": last.end_line, "end_column": last.end_column})


def _check_surrogate_ref(n: ir.Neuron, ref: ir.SurrogateRef, pdims: dict[str, Dim | None], checker: _Checker,
                         diags: Diagnostics) -> None:
    sur = checker.lookup(n, ref.name, ir.Surrogate, ref.span or n.spike.span if n.spike else None, "surrogate")
    if sur is None:
        return
    hyper = {h.name for h in sur.hyper}
    seen: set[str] = set()
    for a in ref.args:
        if a.name not in hyper:
            diags.error(f"surrogate '{sur.name}' has no parameter '{a.name}'", a.span,
                        did_you_mean(a.name, hyper) or f"its parameters: {', '.join(sorted(hyper)) or 'none'}")
        elif a.name in seen:
            diags.error(f"'{a.name}' is given twice", a.span)
        seen.add(a.name)
        expect_dim(a.value, DIMENSIONLESS, Scope(dict(pdims), "a surrogate argument"), diags, f"'{a.name}'")


# ---- rules --------------------------------------------------------------------------------------


def check_rule(r: ir.Rule, diags: Diagnostics) -> ir.Rule:
    kinds = check_local_names(
        [*((p.name, "param", p.span) for p in r.params), *((s.name, f"{s.scope} state", s.span) for s in r.states),
         *((m, "modulator", r.span) for m in r.modulators)], diags, reserved=BUILTINS | {"w"})
    local = set(kinds)
    exprs: list[ir.Expr | None] = [p.default for p in r.params]
    exprs += [s.init for s in r.states]
    exprs += [e.rhs for e in r.equations] + [a.value for ev in r.on_events for a in ev.body]
    exprs += [c.low for c in r.clips] + [c.high for c in r.clips]
    has_units = block_uses_units(exprs, local)
    dt_dim = TIME if has_units else DIMENSIONLESS
    pdims = check_params(r.params, dt_dim, kinds, diags)
    const_scope = Scope({**pdims, "dt": dt_dim}, "an initial value", {k: v for k, v in kinds.items() if v != "param"})
    sdims = {s.name: dim_of(s.init, const_scope, diags) for s in r.states}
    base: dict[str, Dim | None] = {**pdims, **sdims, **{m: DIMENSIONLESS for m in r.modulators}, "w": DIMENSIONLESS,
            "dt": dt_dim, "t": TIME if has_units else DIMENSIONLESS}
    scope = Scope(base, elsewhere={"spiked": "the neuron state"})
    targets: dict[str, Dim | None] = {**sdims, "w": DIMENSIONLESS}  # the weight changes like a synapse state
    check_equations(r.equations, targets, kinds, scope, dt_dim, diags)
    for ev in r.on_events:
        for a in ev.body:
            check_assign(a, targets, kinds, scope, diags, f"`on {ev.event}`")
    for c in r.clips:
        if c.var not in targets:
            diags.error(f"cannot clip '{c.var}'", c.span, did_you_mean(c.var, targets) or "clip `w` or a rule state")
            continue
        want = targets[c.var]
        for bound in (c.low, c.high):
            if want is not None:
                expect_dim(bound, want, scope, diags, f"the clip bound of '{c.var}'")
    check_rule_scopes(r, diags)
    check_numbers(_numbers(r), diags)
    return r.model_copy(update={
        "params": tuple(p.model_copy(update={"dim": _dim_text(pdims, p.name)}) for p in r.params),
        "states": tuple(s.model_copy(update={"dim": _dim_text(sdims, s.name)}) for s in r.states),
        "uses_units": has_units,
    })


def check_rule_scopes(r: ir.Rule, diags: Diagnostics) -> None:
    """What each statement of a rule may read and change (rule_scope.py): a pre state reads only pre
    values, a post state only post values; `on pre` never changes a post state, `on post` never a
    pre state."""
    scopes = {s.name: s.scope for s in r.states}

    def check_reads(var: str, exprs: Iterable[ir.Expr], where: str) -> None:
        scope = scope_of(var, scopes)
        if scope not in ("pre", "post"):
            return  # syn states and `w` read everything; other targets are reported elsewhere
        for expr in exprs:
            for name in names(expr):
                if not unreadable(scope, [name.id], scopes):
                    continue
                other = "`w`" if name.id == "w" else f"the {scopes[name.id]} state '{name.id}'"
                diags.error(f"the {scope} state '{var}' cannot read {other} {where}", name.span,
                            f"a {scope} state holds one value per {scope}synaptic neuron, so it reads only {scope} "
                            "states, params and modulators; a value that combines pre and post values is a "
                            "`syn state` (one per synapse)")

    for expr in [*(eq.rhs for eq in r.equations), *(a.value for ev in r.on_events for a in ev.body),
                 *(b for c in r.clips for b in (c.low, c.high))]:
        for name in names(expr):
            if name.id == "t":
                diags.error("a rule cannot read the time `t`", name.span,
                            "a rule reads its states, params, modulators, `w` and `dt`; for a signal that "
                            "changes over the run, declare a `modulator`")
    for eq in r.equations:
        check_reads(eq.var, [eq.rhs], "in its update")
    for ev in r.on_events:
        other = "post" if ev.event == "pre" else "pre"
        for a in ev.body:
            scope = scope_of(a.var, scopes)
            if not may_change(ev.event, scope):
                diags.error(f"`on {ev.event}` cannot change the {scope} state '{a.var}'", a.span,
                            f"`on {ev.event}` runs where a {ev.event}synaptic neuron spiked, which names no "
                            f"{scope}synaptic neuron: change '{a.var}' in `on {other}` or in its dynamics")
                continue
            check_reads(a.var, [a.value], f"in `on {ev.event}`")
    for c in r.clips:
        check_reads(c.var, [c.low, c.high], "in its clip")


def _dim_text(dims: Mapping[str, Dim | None], name: str) -> str:
    """A dimension for the IR; an unknown one (already an error) is written as dimensionless."""
    return dim_name(dims.get(name) or DIMENSIONLESS)


def constant(expr: ir.Expr, env: Mapping[str, float], diags: Diagnostics, what: str) -> float | None:
    """The SI value of a constant expression, or None after reporting why it has none."""
    for name in names(expr):
        if name.id not in env and name.id not in UNITS and name.id not in CONSTANTS:
            hint = did_you_mean(name.id, [*env, *CONSTANTS]) if name.id not in FUNCTIONS else None
            diags.error(f"{what} must be a constant; '{name.id}' is not known here", name.span, hint)
            return None
    try:
        value = evaluate(expr, env)
    except EvalError as err:
        diags.error(f"{what} has no finite value ({err})", expr.span)
        return None
    if abs(value) > FLOAT32_MAX:
        diags.error(f"{what} is {value:g}, too large for float32", expr.span,
                    "the generated modules compute in float32, whose largest value is about 3.4e38")
        return None
    return value


def in_numbers(expr: ir.Expr) -> bool:
    """Whether `expr` is written in numbers, known units, constants and well-formed calls alone (its value
    is the same everywhere; what is not well-formed is reported by the dimension checks)."""
    for node in walk(expr):
        if isinstance(node, ir.Name) and node.id not in UNITS and node.id not in CONSTANTS:
            return False
        if isinstance(node, ir.Num) and node.unit is not None and node.unit not in UNITS:
            return False
        if isinstance(node, ir.Call) and FUNCTIONS.get(node.fn) != len(node.args):
            return False
    return True


def check_numbers(items: Iterable[tuple[ir.Expr | None, str]], diags: Diagnostics) -> None:
    """Report each largest part of an expression written in numbers alone (`log(0)`, `1/0`, `exp(1000)`,
    `1e30 * 1e30`) that has no finite float32 value, where it is written: the generated code would
    compute it. A part that reads a name is left to run time, except a param's default, which is
    evaluated for each layer with its overrides (`check_network.param_values`)."""
    for expr, what in items:
        stack = [expr] if expr is not None else []
        while stack:
            node = stack.pop()
            if in_numbers(node):
                constant(node, {}, diags, what if node is expr else f"a part of {what}")
            elif isinstance(node, ir.Call):
                stack.extend(node.args)
            elif isinstance(node, ir.BinOp):
                stack.extend((node.left, node.right))
            elif isinstance(node, ir.Neg):
                stack.append(node.operand)


def _numbers(n: ir.Neuron | ir.Rule) -> Iterator[tuple[ir.Expr | None, str]]:
    """Every expression of a block, with how a message names it."""
    for p in n.params:
        yield p.default, f"the default of param '{p.name}'"
        yield p.low, f"the range of param '{p.name}'"
        yield p.high, f"the range of param '{p.name}'"
    for s in n.states:
        yield s.init, f"the initial value of state '{s.name}'"
    for eq in n.equations:
        yield eq.rhs, f"the equation of '{eq.var}'"
    if isinstance(n, ir.Neuron):
        for i in n.inputs:
            yield i.default, f"the default of input '{i.name}'"
        for x in n.lets:
            yield x.expr, f"let '{x.name}'"
        if n.spike is not None:
            yield n.spike.lhs, "the spike condition"
            yield n.spike.rhs, "the spike condition"
            for arg in n.spike.surrogate.args:
                yield arg.value, f"the surrogate's '{arg.name}'"
        for a in n.on_spike.body if n.on_spike else ():
            yield a.value, "`on spike`"
        yield n.refractory, "the refractory period"
    else:
        for ev in n.on_events:
            for a in ev.body:
                yield a.value, f"`on {ev.event}`"
        for c in n.clips:
            yield c.low, f"the clip of '{c.var}'"
            yield c.high, f"the clip of '{c.var}'"
