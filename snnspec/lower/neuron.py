"""A checked neuron (or rule) to its lowered form: SI params, discrete updates, spike and reset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sympy

from .. import ir
from ..dependency import order_by_dependency
from ..diagnostics import Diagnostics
from ..expr import EvalError, evaluate, format_expr, names, substitute, to_si, walk
from ..symbolic import Inexpressible, from_sympy, to_sympy
from .integrate import CannotIntegrate, Integrated, System, integrate
from .kernel import live_params, step_exprs, with_kernel
from .rule import plan_rule
from .surrogate import NotDifferentiable, surrogate_grad


def _line(node: ir.Node) -> int | None:
    return node.span.line if node.span else None


def lower_params(params: Iterable[ir.Param], local: set[str], diags: Diagnostics) -> tuple[ir.LParam, ...]:
    """Params in dependency order, with defaults and ranges in SI, kept as expressions."""
    params = list(params)
    by_name = {p.name: p for p in params}
    order = order_by_dependency({p.name: p.default for p in params}, "param", {}, Diagnostics())
    out = []
    for name in order:
        p = by_name[name]
        used = sorted({n.id for n in names(p.default) if n.id in by_name or n.id == "dt"})
        out.append(ir.LParam(
            name=p.name, default=to_si(p.default, local), learnable=p.learnable, per_neuron=p.per_neuron,
            low=to_si(p.low, local) if p.low is not None else None,
            high=to_si(p.high, local) if p.high is not None else None, depends_on=tuple(used), line=_line(p)))
    return tuple(out)


def symbols(local: Iterable[str]) -> dict[str, sympy.Symbol]:
    return {n: sympy.Symbol(n, real=True) for n in [*local, "dt", "t", "spiked"]}


def integrate_odes(equations: Iterable[ir.Equation], lets: Mapping[str, ir.Expr], syms: Mapping[str, sympy.Symbol],
                   held_names: set[str], method: ir.Method | None, span: ir.Span | None, diags: Diagnostics
                   ) -> tuple[Integrated | None, dict[str, ir.Expr], tuple[ir.Update, ...]]:
    """Integrate the `dX/dt` equations over one step; return the method used, the updates and the
    locals the method adds (rk4's stages), in order.

    A `let` that does not depend on an ODE state is constant over the step: it stays a name
    (computed before the step, like an input). Lets that do depend on one are substituted.
    """
    odes = [e for e in equations if e.form == "ode"]
    if not odes:
        return None, {}, ()
    ode_vars = {e.var for e in odes}
    let_sym: dict[str, sympy.Expr] = {}
    for name, expr in lets.items():  # already in dependency order
        value = to_sympy(expr, {**syms, **let_sym})
        depends = {str(s) for s in value.free_symbols} & ode_vars
        let_sym[name] = value if depends else sympy.Symbol(name, real=True)
    held_lets = tuple(v for v in let_sym.values() if v.is_Symbol)
    states = tuple(syms[e.var] for e in odes)
    held = tuple(s for name, s in syms.items() if s not in states and name in held_names) + held_lets
    system = System(states=states, rhs={syms[e.var]: to_sympy(e.rhs, {**syms, **let_sym}) for e in odes},
                    dt=syms["dt"], t=syms["t"], held=held, taken=frozenset([*syms, *lets]))
    lines = {syms[e.var]: e.span.line if e.span else None for e in odes}
    try:
        result = integrate(system, method)
        return result, *_as_ir(result, lines)
    except CannotIntegrate as err:
        diags.error(str(err), span, "remove the `method` line to let the compiler choose")
    except ValueError as err:  # a form the language cannot print; euler always can
        euler = integrate(system, "euler")
        note = f"{method or 'the default method'} gave a form the language cannot express ({err}); used euler"
        result = Integrated("euler", euler.updates, note, rates=euler.rates)
        return result, *_as_ir(result, lines)
    return None, {}, ()


def _as_ir(result: Integrated, lines: Mapping[sympy.Symbol, int | None]
           ) -> tuple[dict[str, ir.Expr], tuple[ir.Update, ...]]:
    """(updates by name, the locals the method added) of an integration, in IR; a stage of a
    state's ODE keeps that equation's line."""
    owners = result.owners
    return ({x.name: from_sympy(v) for x, v in result.updates.items()},
            tuple(ir.Update(var=x.name, value=from_sympy(v), line=lines.get(owners[x]) if x in owners else None)
                  for x, v in result.lets.items()))


def lower_neuron(n: ir.Neuron, surrogates: Mapping[str, ir.Surrogate], diags: Diagnostics) -> ir.LNeuron | None:
    local = {p.name for p in n.params} | {s.name for s in n.states} | {i.name for i in n.inputs}
    local |= {x.name for x in n.lets}
    lets_order = order_by_dependency({x.name: x.expr for x in n.lets}, "let", {}, Diagnostics())
    let_exprs = {x.name: x.expr for x in n.lets}
    ordered_lets = {name: let_exprs[name] for name in lets_order}
    inlined: dict[str, ir.Expr] = {}
    for name, expr in ordered_lets.items():
        inlined[name] = substitute(expr, inlined)

    syms = symbols(local - set(let_exprs))
    held = {s.name for s in n.states} | {i.name for i in n.inputs} | {"spiked"}
    integrated, ode_updates, stages = integrate_odes(n.equations, ordered_lets, syms, held, n.method, n.span, diags)
    updates = []
    for eq in n.equations:
        value = ode_updates.get(eq.var) if eq.form == "ode" else to_si(eq.rhs, local)
        if value is not None:
            updates.append(ir.Update(var=eq.var, value=value, line=_line(eq)))
    used_by_updates = _lets_needed([u.value for u in (*updates, *stages)], let_exprs)
    lets = tuple(ir.Update(var=name, value=to_si(ordered_lets[name], local), line=_line(x))
                 for name in lets_order for x in n.lets if x.name == name and name in used_by_updates) + stages
    ode_line = {eq.var: _line(eq) for eq in n.equations}

    spike = reset = None
    if n.spike is not None:
        spike = _lower_spike(n, n.spike, surrogates, inlined, local, diags)
        if n.on_spike is not None:
            reset_updates = _sequential(n.on_spike.body, inlined, local)
            arrays = {s.name for s in n.states} | {i.name for i in n.inputs} | {"spiked"}
            reset = ir.LReset(updates=reset_updates, with_gradient=n.on_spike.with_gradient,
                              guarded=tuple(u.var for u in reset_updates if _may_be_nonfinite(u, arrays)))
    return with_kernel(_decided(ir.LNeuron(
        name=n.name, file=n.span.file if n.span else "", span=n.span, method=integrated.method if integrated else None,
        method_note=integrated.note if integrated else None,
        params=lower_params(n.params, local, diags),
        states=tuple(ir.Update(var=s.name, value=to_si(s.init, local), line=_line(s)) for s in n.states),
        inputs=tuple(ir.Update(var=i.name, value=_input_default(i), line=_line(i)) for i in n.inputs),
        lets=lets, updates=tuple(updates), spike=spike, reset=reset,
        refractory=to_si(n.refractory, local) if n.refractory is not None else None,
        uses_units=n.uses_units, equations=tuple(_equation_text(n)), output=_output(n),
        euler_rates=tuple(ir.Update(var=x.name, value=from_sympy(rate), line=ode_line.get(x.name))
                          for x, rate in (integrated.rates if integrated else {}).items()),
    )))


def _decided(n: ir.LNeuron) -> ir.LNeuron:
    """`n` with what every backend needs to know of its step: which derived params are recomputed
    from learnable ones, whether it reads the time `t` or `spiked`, and which lets are constant."""
    reads = {x.id for e in step_exprs(n) for x in names(e)}
    exprs = [e for e in step_exprs(n) if n.spike is None or e is not n.spike.grad]  # a surrogate never reads t
    reads_t = any(x.id == "t" for e in exprs for x in names(e))
    constant, numbers = {"t", "dt", "pi"}, {"dt", "pi"}  # each grows by the lets of its names, in order
    for x in n.lets:
        read = {y.id for y in names(x.value)}
        if read <= constant:
            constant.add(x.var)
        if read <= numbers:
            numbers.add(x.var)
    return n.model_copy(update={
        "live_params": tuple(p.name for p in n.params if p.name in live_params(n)), "reads_t": reads_t,
        "reads_spiked": "spiked" in reads,
        "constant_lets": tuple(x.var for x in n.lets if x.var in constant),
        "number_lets": tuple(x.var for x in n.lets if x.var in numbers)})


MEMBRANE_NAMES = ("v", "mem", "u", "V")


def _output(n: ir.Neuron) -> str | None:
    """What one step of the neuron returns: its spike or, for a non-spiking neuron, its membrane
    (the state named v, mem, u or V, else the last state: synaptic states come first by habit)."""
    if n.spike is not None:
        return "spike"
    states = [s.name for s in n.states]
    return next((name for name in MEMBRANE_NAMES if name in states), states[-1] if states else None)


def _lets_needed(exprs: Iterable[ir.Expr], lets: Mapping[str, ir.Expr]) -> set[str]:
    needed: set[str] = set()
    stack = [n.id for e in exprs for n in names(e) if n.id in lets]
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(n.id for n in names(lets[name]) if n.id in lets)
    return needed


def _sequential(body: Iterable[ir.Assign], inlined: Mapping[str, ir.Expr], local: set[str]) -> tuple[ir.Update, ...]:
    """`on spike` statements run in order: each sees the values the earlier ones assigned."""
    current: dict[str, ir.Expr] = {}
    lines: dict[str, int | None] = {}
    for a in body:
        value = substitute(substitute(a.value, inlined), current)
        old = current.get(a.var, ir.Name(id=a.var))
        if a.op != "=":
            value = ir.BinOp(op=a.op[0], left=old, right=value)  # type: ignore[arg-type]
        current[a.var] = value
        lines[a.var] = _line(a)
    return tuple(ir.Update(var=v, value=to_si(e, local), line=lines[v]) for v, e in current.items())


def _lower_spike(n: ir.Neuron, spike: ir.Spike, surrogates: Mapping[str, ir.Surrogate], inlined: Mapping[str, ir.Expr],
                 local: set[str], diags: Diagnostics) -> ir.LSpike | None:
    sur = surrogates[spike.surrogate.name]
    try:
        x, hyper, grad = surrogate_grad(sur)
    except NotDifferentiable as err:
        diags.error(str(err), sur.span)
        return None
    given = {a.name: a.value for a in spike.surrogate.args}
    values = {h.name: to_si(given.get(h.name, h.value), local) for h in sur.hyper}
    var = "x" if "x" not in local else "x_"
    syms = symbols(local)
    bound = grad.xreplace({x: sympy.Symbol(var, real=True),
                           **{hyper[h]: to_sympy(v, syms) for h, v in values.items()}})
    try:
        grad_expr = from_sympy(bound)
    except Inexpressible as err:
        where = spike.surrogate.span if spike.surrogate.args else sur.span
        given_text = ", ".join(f"{h} = {format_expr(v)}" for h, v in values.items())
        diags.error(f"the gradient of surrogate '{sur.name}' is not finite with {given_text or 'no parameters'} "
                    f"({err})", where or spike.span, "give the surrogate parameters where its `grad` is finite")
        return None
    lhs, rhs = substitute(spike.lhs, inlined), substitute(spike.rhs, inlined)
    diff = rhs if isinstance(lhs, ir.Num) and lhs.value == 0 and not lhs.unit else ir.BinOp(op="-", left=lhs, right=rhs)
    return ir.LSpike(x=to_si(diff, local), inclusive=spike.op == ">=", surrogate=sur.name, grad=grad_expr,
                     grad_var=var, grad_args=tuple(sorted({x.id for x in names(grad_expr)} - {var, "pi", "dt", "t"})),
                     line=_line(spike))


_TOTAL = {"abs", "sign", "tanh", "sigmoid", "atan", "erf", "sin", "cos", "min", "max", "clip", "heaviside",
          "detach"}  # finite for every finite argument


def _may_be_nonfinite(u: ir.Update, arrays: set[str]) -> bool:
    """Whether the value (or change, for `+=`/`-=`) of a reset can be inf or NaN on some step for
    finite states and inputs: it divides by a non-constant, or takes a log, root, power or exp
    (which overflows) of one. A value of params alone is computed once, never per step."""
    change = ir.reset_change(u.var, u.value)[1]
    if not any(x.id in arrays for x in names(change)):
        return False
    for node in walk(change):
        if isinstance(node, ir.Call) and node.fn not in _TOTAL:
            return True
        if isinstance(node, ir.BinOp) and node.op == "/" and (_varies(node.right) or _is_zero(node.right)):
            return True
        if isinstance(node, ir.BinOp) and node.op == "**" and (_varies(node.right) or not _is_natural(node.right)):
            return True
    return False


def _varies(expr: ir.Expr) -> bool:
    return any(isinstance(x, ir.Name) for x in walk(expr))


def _input_default(i: ir.Input) -> ir.Num:
    """An input's default folded to its SI value (the checker has made sure it is a finite constant), so
    that every backend adds one number, whatever expression the spec wrote (`-1`, `2 * 0.5`, `0.1 nA`)."""
    return ir.Num(value=evaluate(to_si(i.default), {}) if i.default else 0.0)


def _is_zero(expr: ir.Expr) -> bool:
    try:
        return evaluate(expr, {}) == 0
    except EvalError:
        return True


def _is_natural(expr: ir.Expr) -> bool:
    """A constant nonnegative integer exponent (`v ** 2`): a polynomial, finite for finite v."""
    try:
        value = evaluate(expr, {})
    except EvalError:
        return False
    return value >= 0 and float(value).is_integer()


def _equation_text(n: ir.Neuron) -> list[str]:
    """The neuron's equations as the spec writes them, for docstrings and `snnspec show`."""
    out = [f"let {x.name} = {format_expr(x.expr)}" for x in n.lets]
    for eq in n.equations:
        head = f"d{eq.var}/dt =" if eq.form == "ode" else f"{eq.var} <-"
        out.append(f"{head} {format_expr(eq.rhs)}")
    if n.spike is not None:
        s = n.spike
        out.append(f"spike when {format_expr(s.lhs)} {s.op} {format_expr(s.rhs)}")
    if n.on_spike is not None:
        body = "; ".join(f"{a.var} {a.op} {format_expr(a.value)}" for a in n.on_spike.body)
        out.append(f"on spike{' with gradient' if n.on_spike.with_gradient else ''} {{ {body} }}")
    if n.refractory is not None:
        out.append(f"refractory {format_expr(n.refractory)}")
    return out


def lower_rule(r: ir.Rule, diags: Diagnostics) -> ir.LRule:
    local = {p.name for p in r.params} | {s.name for s in r.states} | set(r.modulators) | {"w"}
    syms = symbols(local)
    held = {s.name for s in r.states} | set(r.modulators) | {"w"}
    integrated, ode_updates, _ = integrate_odes(r.equations, {}, syms, held, None, r.span, diags)
    updates = []
    for eq in r.equations:
        value = ode_updates.get(eq.var) if eq.form == "ode" else to_si(eq.rhs, local)
        if value is not None:
            updates.append(ir.Update(var=eq.var, value=value, line=_line(eq)))
    events = {ev.event: ev for ev in r.on_events}
    return plan_rule(ir.LRule(
        name=r.name, file=r.span.file if r.span else "", span=r.span, method=integrated.method if integrated else None,
        method_note=integrated.note if integrated else None, params=lower_params(r.params, local, diags),
        states=tuple(ir.Update(var=s.name, value=to_si(s.init, local), line=_line(s)) for s in r.states),
        scopes={s.name: s.scope for s in r.states}, modulators=r.modulators, updates=tuple(updates),
        on_pre=_sequential(events["pre"].body, {}, local) if "pre" in events else (),
        on_post=_sequential(events["post"].body, {}, local) if "post" in events else (),
        clips=tuple(ir.Clip(var=c.var, low=to_si(c.low, local), high=to_si(c.high, local)) for c in r.clips),
    ), diags, r.span)
