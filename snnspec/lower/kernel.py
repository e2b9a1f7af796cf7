"""A neuron's fused recurrence as kernel IR (`ir.LKernel`): what each kernel computes and saves.

The forward runs all T steps and saves each step's updated (pre-reset) state values; the
backward walks the steps in reverse with the partial derivatives `adjoint.py` derives,
recomputing spikes and resets from the saved values. Everything a printer would otherwise decide
is decided here: dead statements are dropped by a read-set analysis, params-only subexpressions
are hoisted out of the time loop, repeated subexpressions become locals (structurally, on the
expression trees, so every float operation stays the one the spec's expression performs), and
what the forward saves is exactly what the backward reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from .. import ir
from ..expr import names, number_value, substitute, walk
from .adjoint import GATE, Derivative, LAdjoint, derive, new, reads_old_state, reset_blend, updated_values
from .budget import SymbolicTimeout

ZERO = ir.Num(value=0.0)
Statements = list[ir.KStatement]


def live_params(n: ir.LNeuron) -> set[str]:
    """Derived params that depend on a learnable one: recomputed from it on every forward."""
    learnable = {p.name for p in n.params if p.learnable}
    live: set[str] = set()
    for p in n.params:  # dependency order
        if not p.learnable and any(d in learnable or d in live for d in p.depends_on):
            live.add(p.name)
    return live


def grad_params(n: ir.LNeuron) -> set[str]:
    """The params that receive gradients: the learnable ones and those derived from them."""
    return {p.name for p in n.params if p.learnable} | live_params(n)


def step_exprs(n: ir.LNeuron) -> list[ir.Expr]:
    exprs = [u.value for u in (*n.lets, *n.updates)]
    if n.spike:
        exprs += [n.spike.x, n.spike.grad]
    if n.reset:
        exprs += [u.value for u in n.reset.updates]
    return exprs


def with_kernel(n: ir.LNeuron) -> ir.LNeuron:
    """`n` with its fused kernel recorded (or why it has none)."""
    try:
        adj = derive(n, grad_params(n))
    except SymbolicTimeout:
        return n.model_copy(update={"kernel_note": "the derivatives of its step ran past the symbolic time limit "
                                                   "(the plain autograd path runs it)"})
    if reads_old_state(adj):
        return n.model_copy(update={"kernel_note": "the spike or a reset reads a state's value from before the step"})
    if not n.inputs or (n.spike is None and n.output is None):
        return n.model_copy(update={"kernel_note": "a neuron without inputs or output"})
    return n.model_copy(update={"kernel": _Builder(n, adj).build()})


def _e(text: str) -> ir.Name:
    return ir.Name(id=text)


def _elem(array: str, *index: str | int) -> ir.KElem:
    return ir.KElem(array=array, index=index)


def _strip(expr: ir.Expr) -> ir.Expr:
    """`expr` without source spans, so that equal trees compare equal."""
    if isinstance(expr, ir.Call):
        return ir.Call(fn=expr.fn, args=tuple(_strip(a) for a in expr.args))
    if isinstance(expr, ir.BinOp):
        return ir.BinOp(op=expr.op, left=_strip(expr.left), right=_strip(expr.right))
    if isinstance(expr, ir.Neg):
        return ir.Neg(operand=_strip(expr.operand))
    return expr.model_copy(update={"span": None})


def _times(weight: ir.Expr, factor: ir.Expr) -> ir.Expr:
    """`weight * factor`, without the multiplication by a factor of 1 or -1."""
    value = number_value(factor)
    if value == 1.0:
        return weight
    if value == -1.0:
        return ir.Neg(operand=weight)
    return ir.BinOp(op="*", left=weight, right=factor)


def _sum(terms: list[ir.Expr]) -> ir.Expr:
    if not terms:
        return ZERO
    out = terms[0]
    for term in terms[1:]:
        out = ir.BinOp(op="+", left=out, right=term)
    return out


class _Builder:
    def __init__(self, n: ir.LNeuron, adj: LAdjoint):
        self.n = n
        self.adj = adj
        self.states = [s.var for s in n.states]
        self.inputs = [i.var for i in n.inputs]
        self.params = [p.name for p in n.params]
        self.grad_params = [p for p in self.params if p in self.adj.params]
        self.spiked = any(x.id == "spiked" for e in step_exprs(n) for x in names(e))
        self.refractory = n.refractory is not None and n.spike is not None
        self.fields = [*self.states, *(["spiked"] if self.spiked else [])]  # those with an adjoint
        self.reset_vars = [u.var for u in n.reset.updates] if n.reset else []
        self.updated = {u.var for u in n.updates}
        self.locals: dict[str, str] = {}
        for name in [*self.states, *self.inputs, *self.params, *(x.var for x in n.lets), "spiked"]:
            self.locals.setdefault(name, name)
        self.locals.update({new(s): f"{s}_new" for s in self.states})
        self.locals.update({GATE: "gate", "t": "now", "%x": "x", "%spike": "spike", "%free": "free", "%gs": "gs",
                            "%gx": "gx", "%on": "on", "%g_out": "g"})
        self.locals.update({f"%gu:{s}": f"gu_{s}" for s in self.states})
        self.locals.update({f"%lam:{s}": f"adj_{s}" for s in self.fields})
        self.temps = 0

    def temp(self, prefix: str) -> str:
        name = f"%{prefix}{self.temps}"
        self.locals[name] = f"{prefix}{self.temps}"
        self.temps += 1
        return name

    # ---- pieces of a step ---------------------------------------------------------------------
    def post(self, mask: str | None) -> Statements:
        """From the updated values: x, the spike, the gate."""
        spike = self.n.spike
        if spike is None:
            return []
        return [ir.KAssign(target="%x", value=_strip(updated_values(spike.x, tuple(self.states)))),
                ir.KSpike(target="%spike", x="%x", inclusive=spike.inclusive, mask=mask),
                ir.KAssign(target=GATE, value=_e("%spike"))]

    def reset_values(self) -> tuple[Statements, list[tuple[str, ir.Expr]]]:
        """(the guards of `LReset.guarded` values, (state, its post-reset value) for each state), on
        updated values."""
        guards: Statements = []
        out: list[tuple[str, ir.Expr]] = []
        for s in self.states:
            if s in self.reset_vars and self.n.reset is not None:
                value = next(u.value for u in self.n.reset.updates if u.var == s)
                if s in self.n.reset.guarded:
                    op, change = ir.reset_change(s, value)
                    guards += self.guard(s, change)
                    guards.append(ir.KSelect(target=f"%safe:{s}", mask=f"%ok:{s}", then=f"%chg:{s}",
                                             other=new(s) if op == "=" else 0.0))
                    safe = _e(f"%safe:{s}")
                    value = safe if op == "=" else ir.BinOp(op=op, left=_e(s), right=safe)
                out.append((s, _strip(reset_blend(s, value, tuple(self.states)))))
            else:
                out.append((s, _e(new(s))))
        return guards, out

    def guard(self, s: str, change: ir.Expr) -> Statements:
        """`%ok:s`: the reset value of `s` is finite, or the neuron spiked (`LReset.guarded`)."""
        for kind in ("chg", "ok", "safe"):
            self.locals[f"%{kind}:{s}"] = f"{kind}_{s}"
        return [ir.KAssign(target=f"%chg:{s}", value=_strip(updated_values(change, tuple(self.states)))),
                ir.KFinite(target=f"%ok:{s}", value=f"%chg:{s}", gate=GATE)]

    def forward(self) -> Statements:
        n = self.n
        out: Statements = [ir.KTime(target="t")]
        out += [ir.KLoad(target=s, src=_elem(f"st:{s}", "m")) for s in self.fields]
        out += [ir.KLoad(target=i, src=_elem(f"in:{i}", "t", "m")) for i in self.inputs]
        out += [ir.KAssign(target=x.var, value=_strip(x.value), line=x.line) for x in n.lets]
        out += [ir.KAssign(target=new(u.var), value=_strip(u.value), line=u.line) for u in n.updates]
        out += [ir.KAssign(target=new(s), value=_e(s)) for s in self.states if s not in self.updated]
        mask = None
        if self.refractory:
            out.append(ir.KTest(target="%free", src=_elem("counter", "m"), op="<=", value=0.0))
            out.append(ir.KFlag(dst=_elem("active", "t", "m"), mask="%free"))
            out += [ir.KSelect(target=new(s), mask="%free", then=new(s), other=s) for s in self.reset_vars]
            mask = "%free"
        out += [ir.KStore(dst=_elem("saved", "t", s, "m"), value=_e(new(s))) for s in self.states]
        out += self.post(mask)
        guards, resets = self.reset_values()
        out += guards
        out += [ir.KStore(dst=_elem(f"st:{s}", "m"), value=value) for s, value in resets]
        if self.spiked:
            out.append(ir.KStore(dst=_elem("st:spiked", "m"), value=_e("%spike")))
        if self.refractory:
            out.append(ir.KCountdown(dst=_elem("counter", "m"), gate=GATE))
        if n.spike is not None:
            out.append(ir.KStore(dst=_elem("out", "t", "m"), value=_e("%spike")))
        else:
            assert n.output is not None
            out.append(ir.KStore(dst=_elem("out", "t", "m"), src=_elem(f"st:{n.output}", "m")))
        fields = [f"st:{f}" for f in self.fields] + (["counter"] if self.refractory else [])
        out.append(ir.KIf(cond="recording", body=tuple(
            ir.KStore(dst=_elem("rec", "t", k, "m"), src=_elem(a, "m")) for k, a in enumerate(fields))))
        return out

    def backward(self) -> Statements:
        out: Statements = [ir.KTime(target="t")]
        before: Statements = [ir.KLoad(target=new(s), src=_elem("saved", "t-1", s, "m")) for s in self.states]
        before += [ir.KLoad(target=i, src=_elem(f"in:{i}", "t-1", "m")) for i in self.inputs]
        if self.refractory:
            before.append(ir.KTest(target="%free", src=_elem("active", "t-1", "m"), op="==", value=1.0))
        before += self.post("%free" if self.refractory else None)
        guards, resets = self.reset_values()
        before += guards
        before += [ir.KAssign(target=s, value=value) for s, value in resets]
        if self.spiked:
            before.append(ir.KAssign(target="spiked", value=_e("%spike")))
        out.append(ir.KIf(cond="first_step", body=tuple(ir.KLoad(target=f, src=_elem(f"st:{f}", "m"))
                                                         for f in self.fields), orelse=tuple(before)))
        out += [ir.KLoad(target=new(s), src=_elem("saved", "t", s, "m")) for s in self.states]
        out += [ir.KLoad(target=i, src=_elem(f"in:{i}", "t", "m")) for i in self.inputs]
        if self.refractory:
            out.append(ir.KTest(target="%free", src=_elem("active", "t", "m"), op="==", value=1.0))
        out += self.post("%free" if self.refractory else None)
        out += self.reset_values()[0]  # the guards of this step's reset, for its derivatives
        return out + self.adjoint_step()

    def guarded_derivatives(self) -> tuple[Statements, tuple[Derivative, ...]]:
        """`adj.dR`, each derivative of a guarded reset a local that is the plain blend's (1 for its
        own updated value, else 0) where its value was not kept: no `0 * inf` from a value that is
        not finite on a step without a spike."""
        guarded = set(self.n.reset.guarded) if self.n.reset else set()
        out: Statements = []
        dR = []
        for d in self.adj.dR:
            if d.of in guarded:
                local = self.temp("dr")
                out.append(ir.KAssign(target=local, value=d.value))
                out.append(ir.KSelect(target=local, mask=f"%ok:{d.of}", then=local,
                                      other=1.0 if d.wrt == new(d.of) else 0.0))
                d = d.model_copy(update={"value": _e(local)})
            dR.append(d)
        return out, tuple(dR)

    def adjoint_step(self) -> Statements:
        n = self.n
        out: Statements = [ir.KStore(dst=_elem(f"lam:{f}", "m"), src=_elem("g_rec", "t", k, "m"), add=True,
                                     optional=True) for k, f in enumerate(self.fields)]
        guards, dR = self.guarded_derivatives()
        out += guards
        adj = self.adj.model_copy(update={"dR": dR})
        if n.spike is None:
            assert n.output is not None  # a neuron without spikes outputs one of its states
            out.append(ir.KStore(dst=_elem(f"lam:{n.output}", "m"), src=_elem("g_out", "t", "m"), add=True))
        out += [ir.KLoad(target=f"%lam:{f}", src=_elem(f"lam:{f}", "m")) for f in self.fields]
        lam = {f: _e(f"%lam:{f}") for f in self.fields}
        gi: dict[str, list[ir.Expr]] = {i: [] for i in self.inputs}  # terms of each input's gradient
        gp: dict[str, list[ir.Expr]] = {q: [] for q in self.grad_params}
        if n.spike is not None:
            terms: list[ir.Expr] = [lam["spiked"]] if self.spiked else []
            if n.reset is not None and n.reset.with_gradient:
                terms += [_times(lam[d.of], d.value) for d in adj.dR if d.wrt == GATE]
            out.append(ir.KLoad(target="%g_out" if terms else "%gs", src=_elem("g_out", "t", "m")))
            if terms:
                out.append(ir.KAssign(target="%gs", value=_sum([_e("%g_out"), *terms])))
            grad = _strip(substitute(n.spike.grad, {n.spike.grad_var: _e("%x")}))
            gx: ir.Expr = ir.BinOp(op="*", left=_e("%gs"), right=grad)
            if self.refractory:
                out.append(ir.KSelect(target="%on", mask="%free", then=1.0, other=0.0))
                gx = ir.BinOp(op="*", left=gx, right=_e("%on"))
            out.append(ir.KAssign(target="%gx", value=gx))
        for s in self.states:
            terms = [] if s in self.reset_vars else [lam[s]]
            terms += [_times(lam[d.of], d.value) for d in adj.dR if d.wrt == new(s)]
            terms += [_times(_e("%gx"), d.value) for d in adj.dX if d.wrt == new(s)]
            out.append(ir.KAssign(target=f"%gu:{s}", value=_sum(terms)))
        for d in (*adj.dR, *adj.dX):
            weight = lam[d.of] if d.of != "x" else _e("%gx")
            (gi if d.wrt in gi else gp).get(d.wrt, []).append(_times(weight, d.value))
        # the refractory hold, and states without dynamics, pass U's gradient to the old value
        carry: dict[str, list[ir.Expr]] = {f: [] for f in self.fields}
        for s in self.states:
            gu = f"%gu:{s}"
            if s not in self.updated:
                carry[s].append(_e(gu))
            elif self.refractory and s in self.reset_vars:  # held at its old value while refractory
                held = f"%held:{s}"
                self.locals[held] = f"held_{s}"
                out.append(ir.KSelect(target=held, mask="%free", then=0.0, other=gu))
                out.append(ir.KSelect(target=gu, mask="%free", then=gu, other=0.0))
                carry[s].append(_e(held))
        for d in adj.dF:
            term = _times(_e(f"%gu:{d.of}"), d.value)
            for table in (carry, gi, gp):
                if d.wrt in table:
                    table[d.wrt].append(term)
                    break
        out += [ir.KStore(dst=_elem(f"g:{i}", "t", "m"), value=_sum(gi[i])) for i in self.inputs]
        out += [ir.KStore(dst=_elem(f"g:{q}", "m"), value=_sum(gp[q]), add=True) for q in self.grad_params if gp[q]]
        out += [ir.KStore(dst=_elem(f"lam:{f}", "m"), value=_sum(carry[f])) for f in self.fields]
        return [_strip_statement(s) for s in out]

    # ---- the kernels ----------------------------------------------------------------------------
    def build(self) -> ir.LKernel:
        backward = _dead_removed(self.backward())
        read = _arrays(backward)
        saved = tuple(s for s in self.states if "saved" in read and _reads_saved(backward, s))
        forward = self.forward()
        forward = [s for s in forward if not (isinstance(s, ir.KStore) and s.dst.array == "saved"
                                              and s.dst.index[1] not in saved)]
        forward = _index_saved(_dead_removed(forward), saved)
        backward = _index_saved(backward, saved)
        fwd = self.kernel_pass(forward, reverse=False)
        bwd = self.kernel_pass(backward, reverse=True)
        fwd_read, bwd_read = _arrays([*fwd.invariants, *fwd.step]), _arrays([*bwd.invariants, *bwd.step])
        arrays = [(f"in:{i}", f"in_{i}") for i in self.inputs] + [(f"st:{f}", f"st_{f}") for f in self.fields]
        arrays += [(f"pa:{p}", f"pa_{p}") for p in self.params] + [(f"lam:{f}", f"lam_{f}") for f in self.fields]
        arrays += [(f"g:{x}", f"g_{x}") for x in [*self.inputs, *self.grad_params]]
        reads_t = any(isinstance(s, ir.KTime) for s in (*fwd.step, *bwd.step))
        return ir.LKernel(
            inputs=tuple(self.inputs), states=tuple(self.states), params=tuple(self.params),
            reads_spiked=self.spiked, refractory=self.refractory, reads_t=reads_t,
            grad_params=tuple(self.grad_params), saves_inputs=any(f"in:{i}" in bwd_read for i in self.inputs),
            saved=saved, saved_start=tuple(f for f in self.fields if f"st:{f}" in bwd_read),
            saved_params=tuple(p for p in self.params if f"pa:{p}" in bwd_read),
            locals=tuple(self.locals.items()), arrays=tuple((a, name) for a, name in arrays
                                                            if a in fwd_read or a in bwd_read),
            forward=fwd, backward=bwd)

    def kernel_pass(self, step: Statements, reverse: bool) -> ir.KPass:
        step, invariants = self.hoisted(step)
        step = self.cse(step)
        params = {x.id for s in _walk([*invariants, *step]) for x in _reads(s)}
        loads: Statements = [ir.KLoad(target=p, src=_elem(f"pa:{p}", "n")) for p in self.params if p in params]
        order = ["in:", "st:", "counter", "pa:", "N", "dt", "steps", "out", "saved", "rec", "active", "g_out",
                 "g_rec", "lam:", "g:"]
        used = _arrays([*loads, *step]) | {"N"} | ({"dt"} if _scalar_dt(step, invariants) else set())
        if any(isinstance(s, ir.KCountdown) for s in step):
            used.add("steps")
        ids = [f"in:{i}" for i in self.inputs] + [f"st:{f}" for f in self.fields] + ["counter"]
        ids += [f"pa:{p}" for p in self.params] + ["N", "dt", "steps", "out", "saved", "rec", "active", "g_out",
                                                   "g_rec", *(f"lam:{f}" for f in self.fields)]
        ids += [f"g:{x}" for x in [*self.inputs, *self.grad_params]]
        args = sorted((a for a in ids if a in used), key=lambda a: next(k for k, p in enumerate(order)
                                                                        if a == p or a.startswith(p) and p[-1] == ":"))
        return ir.KPass(args=tuple(args), reverse=reverse, invariants=(*loads, *self.cse(invariants)),
                        step=tuple(step))

    def hoisted(self, step: Statements) -> tuple[Statements, Statements]:
        """`step` with its maximal params-only subexpressions read from locals computed before the loop."""
        constant = {*self.params, "dt", "pi"}
        found: dict[ir.Expr, str] = {}
        invariants: Statements = []

        def hoist(expr: ir.Expr) -> ir.Expr:
            if _compound(expr) and all(x.id in constant for x in names(expr)):
                if expr not in found:
                    found[expr] = self.temp("c")
                    invariants.append(ir.KAssign(target=found[expr], value=expr))
                return _e(found[expr])
            return _children(expr, hoist)

        return _map_exprs(step, hoist), invariants

    def cse(self, block: Statements) -> Statements:
        """Repeated subexpressions of a block (of the same values: no name reassigned between) as locals."""
        version: Counter[str] = Counter()
        counts: Counter[tuple[ir.Expr, tuple[tuple[str, int], ...]]] = Counter()

        def key(expr: ir.Expr) -> tuple[ir.Expr, tuple[tuple[str, int], ...]]:
            return expr, tuple(sorted((x, version[x]) for x in {y.id for y in names(expr)}))

        for s in block:
            for expr in _exprs(s):
                counts.update(key(x) for x in walk(expr) if _compound(x))
            version.update(_defs(s))
        version.clear()
        temps: dict[tuple[ir.Expr, tuple[tuple[str, int], ...]], str] = {}
        out: Statements = []

        def shared(expr: ir.Expr) -> ir.Expr:
            if not _compound(expr) or counts[key(expr)] < 2:
                return _children(expr, shared)
            k = key(expr)
            if k not in temps:
                value = _children(expr, shared)
                temps[k] = self.temp("e")
                out.append(ir.KAssign(target=temps[k], value=value))
            return _e(temps[k])

        for s in block:
            if isinstance(s, ir.KIf):
                s = s.model_copy(update={"body": tuple(self.cse(list(s.body))),
                                         "orelse": tuple(self.cse(list(s.orelse)))})
                out.append(s)
            else:
                out.extend(_map_exprs([s], shared))
            version.update(_defs(s))
        return _single_uses_inlined(out, set(temps.values()))


# ---- statements as data -------------------------------------------------------------------------


def _strip_statement(s: ir.KStatement) -> ir.KStatement:
    return _map_exprs([s], _strip)[0]


def _compound(expr: ir.Expr) -> bool:
    """Worth a local: an operation on names (not a bare name or number, `-name`, or numbers only)."""
    if isinstance(expr, (ir.Name, ir.Num)) or (isinstance(expr, ir.Neg) and isinstance(expr.operand, (ir.Name,
                                                                                                      ir.Num))):
        return False
    return any(isinstance(x, ir.Name) for x in walk(expr))


def _children(expr: ir.Expr, fn: Callable[[ir.Expr], ir.Expr]) -> ir.Expr:
    if isinstance(expr, ir.Call):
        return expr.model_copy(update={"args": tuple(fn(a) for a in expr.args)})
    if isinstance(expr, ir.BinOp):
        return expr.model_copy(update={"left": fn(expr.left), "right": fn(expr.right)})
    if isinstance(expr, ir.Neg):
        return expr.model_copy(update={"operand": fn(expr.operand)})
    return expr


def _exprs(s: ir.KStatement) -> list[ir.Expr]:
    if isinstance(s, ir.KAssign):
        return [s.value]
    if isinstance(s, ir.KStore) and s.value is not None:
        return [s.value]
    return []


def _map_exprs(block: Iterable[ir.KStatement], fn: Callable[[ir.Expr], ir.Expr]) -> Statements:
    out: Statements = []
    for s in block:
        if isinstance(s, (ir.KAssign, ir.KStore)) and s.value is not None:
            s = s.model_copy(update={"value": fn(s.value)})
        elif isinstance(s, ir.KIf):
            s = s.model_copy(update={"body": tuple(_map_exprs(s.body, fn)), "orelse": tuple(_map_exprs(s.orelse, fn))})
        out.append(s)
    return out


def _walk(block: Iterable[ir.KStatement]) -> Iterator[ir.KStatement]:
    for s in block:
        yield s
        if isinstance(s, ir.KIf):
            yield from _walk((*s.body, *s.orelse))


def _reads(s: ir.KStatement) -> list[ir.Name]:
    """The locals a statement reads (not those of a nested block)."""
    out = [x for e in _exprs(s) for x in names(e)]
    if isinstance(s, ir.KSpike):
        out += [_e(s.x)] + ([_e(s.mask)] if s.mask else [])
    elif isinstance(s, ir.KSelect):
        out += [_e(s.mask)] + [_e(v) for v in (s.then, s.other) if isinstance(v, str)]
    elif isinstance(s, ir.KFinite):
        out += [_e(s.value), _e(s.gate)]
    elif isinstance(s, ir.KFlag):
        out.append(_e(s.mask))
    elif isinstance(s, ir.KCountdown):
        out.append(_e(s.gate))
    return out


def _defs(s: ir.KStatement) -> list[str]:
    if isinstance(s, ir.KIf):
        return [d for x in (*s.body, *s.orelse) for d in _defs(x)]
    target = getattr(s, "target", None)
    return [target] if target is not None else []


def _live(block: Statements, live: set[str]) -> tuple[Statements, set[str]]:
    """`block` without the assignments nothing reads later, and the locals live before it."""
    out: Statements = []
    for s in reversed(block):
        if isinstance(s, ir.KIf):
            body, live_body = _live(list(s.body), set(live))
            orelse, live_else = _live(list(s.orelse), set(live))
            if body or orelse:
                out.append(s.model_copy(update={"body": tuple(body), "orelse": tuple(orelse)}))
            live = live_body | live_else
            continue
        target = getattr(s, "target", None)
        if target is not None and target not in live:
            continue
        out.append(s)
        live = (live - {target}) | {x.id for x in _reads(s)}
    return out[::-1], live


def _dead_removed(block: Statements) -> Statements:
    return _live(block, set())[0]


def _arrays(block: Iterable[ir.KStatement]) -> set[str]:
    out = set()
    for s in _walk(block):
        for elem in (getattr(s, "src", None), getattr(s, "dst", None)):
            if elem is not None:
                out.add(elem.array)
        if isinstance(s, ir.KIf) and s.cond == "recording":
            out.add("rec")
    return out


def _scalar_dt(step: Statements, invariants: Statements) -> bool:
    return any(isinstance(s, ir.KTime) or any(x.id == "dt" for x in _reads(s)) for s in _walk([*step, *invariants]))


def _reads_saved(block: Statements, state: str) -> bool:
    return any(isinstance(s, ir.KLoad) and s.src.array == "saved" and s.src.index[1] == state for s in _walk(block))


def _index_saved(block: Iterable[ir.KStatement], saved: tuple[str, ...]) -> Statements:
    """The `saved` array indexed by each state's position among those saved."""

    def at(elem: ir.KElem) -> ir.KElem:
        if elem.array != "saved":
            return elem
        t, s, m = elem.index
        return elem.model_copy(update={"index": (t, saved.index(str(s)), m)})

    out: Statements = []
    for s in block:
        if isinstance(s, ir.KLoad):
            s = s.model_copy(update={"src": at(s.src)})
        elif isinstance(s, ir.KStore):
            s = s.model_copy(update={"dst": at(s.dst)})
        elif isinstance(s, ir.KIf):
            s = s.model_copy(update={"body": tuple(_index_saved(s.body, saved)),
                                     "orelse": tuple(_index_saved(s.orelse, saved))})
        out.append(s)
    return out


def _single_uses_inlined(block: Statements, temps: set[str]) -> Statements:
    """Temporaries read once (a part of a larger repeated expression) put back where they are read."""
    uses = Counter(x.id for s in _walk(block) for x in _reads(s) if x.id in temps)
    once = {t for t in temps if uses[t] == 1}
    values: dict[str, ir.Expr] = {}
    out: Statements = []
    for s in block:
        if isinstance(s, ir.KAssign) and s.target in once:
            values[s.target] = substitute(s.value, values)
            continue
        out.extend(_map_exprs([s], lambda e: substitute(e, values)))
    return out
