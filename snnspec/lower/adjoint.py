"""The derivatives a fused backward pass through time needs, derived symbolically.

One step of a neuron, elementwise (LANGUAGE.md §2 order):

    U_w = F_w(old states, inputs, params)      dynamics (lets inlined), for each updated state w
    x   = X(U, old states, inputs, params)      the spike condition, on the updated values
    s   = heaviside(x);  g = s (detached unless `with gradient`)
    w   = R_w(U, g, inputs, params)             `on spike`: U_w blended towards its reset value

A backward pass that walks the steps in reverse needs the partial derivatives of F, X and R;
they are computed here once, as IR expressions (zeros dropped), so any backend can print them.
In these expressions a state's name is its value before the step and `name'` its updated
value U; `gate'` is the gate g.

`heaviside` and `sign` are steps: their derivative, a Dirac delta, is taken as zero, as torch's
and JAX's autograd take it on the plain paths (docs/language-notes.md, "Gradients").
"""

from __future__ import annotations

import sympy

from .. import ir
from ..expr import names, substitute
from ..symbolic import from_sympy, to_sympy
from .budget import time_limit

GATE = ir.GATE  # the spike gate of a reset blend, one name for the rule blocks and the kernels


def new(name: str) -> str:
    """The IR name of a state's updated (pre-reset) value."""
    return f"{name}'"


class Derivative(ir.Model):
    of: str
    wrt: str
    value: ir.Expr


class LAdjoint(ir.Model):
    """Partial derivatives of one neuron step; `params` are those that receive gradients."""

    states: tuple[str, ...]
    params: tuple[str, ...]
    dF: tuple[Derivative, ...]  # of an updated state's U, wrt an old state, input or param
    dX: tuple[Derivative, ...]  # of x, wrt an updated value, old state, input or param
    dR: tuple[Derivative, ...]  # of a reset state, wrt an updated value, the gate, old state, input or param
    uses: tuple[str, ...]  # every name the derivative expressions read


def reset_blend(var: str, value: ir.Expr, states: tuple[str, ...]) -> ir.Expr:
    """`on spike` as a gated blend on updated values: `U + g*e` for `+=`/`-=`, else `U - g*(U - value)`."""
    u = ir.Name(id=new(var))
    gate = ir.Name(id=GATE)
    if isinstance(value, ir.BinOp) and value.op in "+-" and isinstance(value.left, ir.Name) and value.left.id == var:
        increment = updated_values(value.right, states)
        return ir.BinOp(op=value.op, left=u, right=ir.BinOp(op="*", left=gate, right=increment))
    target = updated_values(value, states)
    return ir.BinOp(op="-", left=u, right=ir.BinOp(op="*", left=gate, right=ir.BinOp(op="-", left=u, right=target)))


def updated_values(expr: ir.Expr, states: tuple[str, ...]) -> ir.Expr:
    """`expr` with each state name read as its updated value (`v` -> `v'`)."""
    return substitute(expr, {s: ir.Name(id=new(s)) for s in states})


def derive(n: ir.LNeuron, grad_params: set[str]) -> LAdjoint:
    """Every nonzero partial derivative of `n`'s step (see the module docstring)."""
    states = tuple(s.var for s in n.states)
    inputs = tuple(i.var for i in n.inputs)
    params = tuple(p.name for p in n.params if p.name in grad_params)
    all_params = tuple(p.name for p in n.params)
    symbol_names = [*states, "spiked", *inputs, *all_params, "dt", "t", *(new(s) for s in states), GATE]
    syms = {name: sympy.Symbol(name, real=True) for name in symbol_names}
    lets: dict[str, sympy.Expr] = {}
    for let in n.lets:
        lets[let.var] = to_sympy(let.value, {**syms, **lets})

    def s(expr: ir.Expr) -> sympy.Expr:
        return to_sympy(expr, {**syms, **lets})

    old = [*states, "spiked"]
    dF: list[Derivative] = []
    dX: list[Derivative] = []
    dR: list[Derivative] = []
    with time_limit():
        for u in n.updates:
            f = s(u.value)
            for wrt in (*old, *inputs, *params):
                _add(dF, u.var, wrt, f, syms)
        if n.spike is not None:
            x = s(updated_values(n.spike.x, states))
            for wrt in (*(new(v) for v in states), *old, *inputs, *params):
                _add(dX, "x", wrt, x, syms)
        if n.reset is not None:
            for r in n.reset.updates:
                blend = s(reset_blend(r.var, r.value, states))
                for wrt in (*(new(v) for v in states), GATE, *old, *inputs, *params):
                    _add(dR, r.var, wrt, blend, syms)
    used = sorted({x.id for d in (*dF, *dX, *dR) for x in names(d.value)})
    return LAdjoint(states=states, params=params, dF=tuple(dF), dX=tuple(dX), dR=tuple(dR), uses=tuple(used))


def _add(out: list[Derivative], of: str, wrt: str, f: sympy.Expr, syms: dict[str, sympy.Symbol]) -> None:
    d = sympy.diff(f, syms[wrt]).replace(sympy.DiracDelta, lambda *_: sympy.S.Zero)
    if d != 0:
        out.append(Derivative(of=of, wrt=wrt, value=from_sympy(d)))


def reads_old_state(adj: LAdjoint) -> bool:
    """Whether x or a reset reads a state's value from before the step (not its updated value)."""
    old = {*adj.states, "spiked"}
    return any(d.wrt in old for d in (*adj.dX, *adj.dR))
