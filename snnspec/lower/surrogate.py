"""Surrogates: `smooth` to `grad` by symbolic differentiation, simplified (LANGUAGE.md §3)."""

from __future__ import annotations

import sympy

from .. import ir
from ..symbolic import to_sympy
from .budget import SymbolicTimeout, time_limit


class NotDifferentiable(Exception):
    """The smooth stand-in has no derivative the backward pass can use."""


def _tidy(expr: sympy.Expr, x: sympy.Symbol) -> sympy.Expr:
    """The shortest of a few simplified forms, with x*sign(x) written as |x|.

    Full `simplify` likes to introduce `Piecewise` and `cosh`; a backward pass reads better
    (and stays finite) in the plain rational/exponential form the candidates below keep.
    """
    expr = expr.replace(lambda e: e.is_Mul and sympy.sign(x) in e.args and x in e.args,
                        lambda e: e / (x * sympy.sign(x)) * sympy.Abs(x))
    candidates = [expr, sympy.factor(sympy.together(expr)), sympy.cancel(sympy.together(expr))]
    candidates = [c for c in candidates if not c.has(sympy.Piecewise)]
    return min(candidates, key=sympy.count_ops)


def surrogate_grad(s: ir.Surrogate) -> tuple[sympy.Symbol, dict[str, sympy.Symbol], sympy.Expr]:
    """The gradient `ds/dx` of a surrogate, in terms of its argument and hyper-parameter symbols."""
    x = sympy.Symbol(s.arg, real=True)
    hyper = {h.name: sympy.Symbol(h.name, real=True) for h in s.hyper}
    body = to_sympy(s.expr, {s.arg: x, **hyper})
    if s.form == "grad":
        return x, hyper, body
    try:
        with time_limit():
            grad = _tidy(sympy.diff(body, x), x)
    except SymbolicTimeout:
        grad = sympy.diff(body, x)
    if grad.has(sympy.DiracDelta) or grad.has(sympy.Derivative) or grad.has(sympy.Subs):
        raise NotDifferentiable(f"the derivative of `smooth` of '{s.name}' is not a function "
                                "(it uses heaviside, sign or a kink); give `grad = ...` instead")
    return x, hyper, grad
