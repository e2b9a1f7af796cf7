"""Name resolution and dimension inference for expressions (LANGUAGE.md §1).

`Scope` says which names an expression may use here and what each one's dimension is; names
that exist in the enclosing block but are not allowed in this position are kept apart, so the
diagnostic can say why (`a param's default cannot use state 'v'`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from . import ir
from .diagnostics import Diagnostics, did_you_mean
from .expr import CONSTANTS, FUNCTIONS, EvalError, evaluate
from .units import DIMENSIONLESS, UNITS, Dim, dim_name


@dataclass
class Scope:
    dims: dict[str, Dim | None]  # None: a name whose dimension is unknown, its error already reported
    context: str = "here"  # "a param's default", used in messages
    elsewhere: dict[str, str] = field(default_factory=dict)  # name -> what it is, not usable here
    shadowed_units: bool = True  # local names shadow unit names

    def with_names(self, extra: dict[str, Dim | None]) -> Scope:
        return Scope({**self.dims, **extra}, self.context, self.elsewhere)


def uses_units(expr: ir.Expr, local: set[str]) -> bool:
    from .expr import walk

    for node in walk(expr):
        if isinstance(node, ir.Num) and node.unit:
            return True
        if isinstance(node, ir.Name) and node.id in UNITS and node.id not in local:
            return True
    return False


def dim_of(expr: ir.Expr, scope: Scope, diags: Diagnostics) -> Dim | None:
    """The dimension of `expr`, or None after reporting why it has none."""
    if isinstance(expr, ir.Num):
        if expr.unit is None:
            return DIMENSIONLESS
        if expr.unit not in UNITS:
            diags.error(f"unknown unit '{expr.unit}'", expr.span,
                        did_you_mean(expr.unit, UNITS) or "units are a prefix (p n u m k M G) on s V A S F ohm Hz")
            return None
        return UNITS[expr.unit][1]
    if isinstance(expr, ir.Name):
        return _name_dim(expr, scope, diags)
    if isinstance(expr, ir.Neg):
        return dim_of(expr.operand, scope, diags)
    if isinstance(expr, ir.BinOp):
        return _binop_dim(expr, scope, diags)
    return _call_dim(expr, scope, diags)


def _name_dim(expr: ir.Name, scope: Scope, diags: Diagnostics) -> Dim | None:
    if expr.id in scope.dims:
        return scope.dims[expr.id]
    if expr.id in scope.elsewhere:
        diags.error(f"{scope.context} cannot use {scope.elsewhere[expr.id]} '{expr.id}'", expr.span)
        return None
    if expr.id in UNITS:
        return UNITS[expr.id][1]
    if expr.id in CONSTANTS:
        return DIMENSIONLESS
    if expr.id in FUNCTIONS:
        diags.error(f"'{expr.id}' is a function, not a value", expr.span, f"call it: {expr.id}(...)")
        return None
    hint = did_you_mean(expr.id, [*scope.dims, *scope.elsewhere, *CONSTANTS])
    diags.error(f"unknown name '{expr.id}'", expr.span, hint)
    return None


def _binop_dim(expr: ir.BinOp, scope: Scope, diags: Diagnostics) -> Dim | None:
    left = dim_of(expr.left, scope, diags)
    right = dim_of(expr.right, scope, diags)
    if left is None or right is None:
        return None
    if expr.op in "+-":
        if left != right:
            verb = "add" if expr.op == "+" else "subtract"
            diags.error(f"cannot {verb} {dim_name(left)} and {dim_name(right)}", expr.span,
                        "both sides of `+` and `-` must have the same dimension")
            return None
        return left
    if expr.op == "*":
        return left * right
    if expr.op == "/":
        return left / right
    if not right.dimensionless:
        diags.error(f"an exponent must be dimensionless, not {dim_name(right)}", expr.right.span)
        return None
    if left.dimensionless:
        return DIMENSIONLESS
    try:
        exponent = Fraction(evaluate(expr.right, {})).limit_denominator(100)
    except EvalError:
        diags.error(f"a {dim_name(left)} value can only be raised to a constant power", expr.right.span,
                    "make the base dimensionless, e.g. divide it by a unit")
        return None
    return left**exponent


_DIMENSIONLESS_ARGS = {"exp", "log", "tanh", "sigmoid", "atan", "erf", "sin", "cos"}


def _call_dim(expr: ir.Call, scope: Scope, diags: Diagnostics) -> Dim | None:
    if expr.fn not in FUNCTIONS:
        diags.error(f"unknown function '{expr.fn}'", expr.span,
                    did_you_mean(expr.fn, FUNCTIONS) or f"the functions are: {', '.join(FUNCTIONS)}")
        for a in expr.args:
            dim_of(a, scope, diags)
        return None
    arity = FUNCTIONS[expr.fn]
    if len(expr.args) != arity:
        diags.error(f"{expr.fn}() takes {arity} argument{'s' * (arity > 1)}, got {len(expr.args)}", expr.span)
        return None
    dims = [dim_of(a, scope, diags) for a in expr.args]
    if any(d is None for d in dims):
        return None
    first = dims[0]
    assert first is not None
    if expr.fn in _DIMENSIONLESS_ARGS:
        if not first.dimensionless:
            diags.error(f"{expr.fn}() needs a dimensionless argument, got {dim_name(first)}", expr.args[0].span,
                        "divide by a reference value with the same unit")
            return None
        return DIMENSIONLESS
    if expr.fn in ("sign", "heaviside"):
        return DIMENSIONLESS
    if expr.fn == "sqrt":
        return first ** Fraction(1, 2)
    if any(d != first for d in dims):
        names = " and ".join(dim_name(d) for d in dims if d is not None)
        diags.error(f"{expr.fn}() needs arguments of one dimension, got {names}", expr.span)
        return None
    return first


def expect_dim(expr: ir.Expr, want: Dim, scope: Scope, diags: Diagnostics, what: str) -> bool:
    """Check that `expr` has dimension `want`; `what` names the expression in the message."""
    got = dim_of(expr, scope, diags)
    if got is None:
        return False
    if got != want:
        diags.error(f"{what} has {dim_name(want)} but the value has {dim_name(got)}", expr.span, _unit_hint(want))
        return False
    return True


def _unit_hint(want: Dim) -> str | None:
    for unit, (factor, dim) in UNITS.items():
        if dim == want and factor == 1.0:
            return f"give the value a unit of {dim_name(want)}, e.g. `{unit}` with a prefix"
    return None
