"""Expressions: the built-in functions, walking, numeric evaluation, sympy in and out, printing.

IR expressions (`ir.Num | ir.Name | ir.Call | ir.BinOp | ir.Neg`) are the one representation
the front end, the lowering and the emitters share. Symbolic work goes through sympy:
`to_sympy` converts values to SI as it goes (exact rationals, so `10 ms` is `1/100`), and
`from_sympy` turns a result back into an IR expression that every backend can print.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction

import sympy

from . import ir
from .units import UNITS
from .units import to_si as si_value

# name -> number of arguments
FUNCTIONS: dict[str, int] = {
    "exp": 1, "log": 1, "sqrt": 1, "abs": 1, "sign": 1, "tanh": 1, "sigmoid": 1, "atan": 1,
    "erf": 1, "sin": 1, "cos": 1, "min": 2, "max": 2, "clip": 3, "heaviside": 1, "detach": 1,
}
CONSTANTS = {"pi": math.pi}


def walk(expr: ir.Expr) -> Iterator[ir.Expr]:
    """Every node of `expr`, parents first."""
    stack: list[ir.Expr] = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ir.Call):
            stack.extend(reversed(node.args))
        elif isinstance(node, ir.BinOp):
            stack.extend((node.right, node.left))
        elif isinstance(node, ir.Neg):
            stack.append(node.operand)


def names(expr: ir.Expr) -> list[ir.Name]:
    """The name references in `expr`, in source order."""
    return [n for n in walk(expr) if isinstance(n, ir.Name)]


def num(value: float) -> ir.Num:
    return ir.Num(value=float(value))


# ---- numeric evaluation -----------------------------------------------------------------------


class EvalError(ValueError):
    """A constant expression has no finite value (overflow, log of a negative, unknown name)."""


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


_NUMERIC: dict[str, Callable[..., float]] = {
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs,
    "sign": lambda x: float((x > 0) - (x < 0)), "tanh": math.tanh, "sigmoid": _sigmoid,
    "atan": math.atan, "erf": math.erf, "sin": math.sin, "cos": math.cos, "min": min, "max": max,
    "clip": lambda x, lo, hi: min(max(x, lo), hi), "heaviside": lambda x: float(x > 0),
    "detach": lambda x: x,
}
_BINARY: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "**": lambda a, b: a**b,
}


def evaluate(expr: ir.Expr, env: Mapping[str, float]) -> float:
    """The SI value of a constant expression; names resolve through `env`, then units and `pi`."""
    try:
        value = _evaluate(expr, env)
    except (OverflowError, ZeroDivisionError, ValueError, TypeError) as err:
        raise EvalError(str(err)) from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise EvalError("the value is not a finite real number")
    return float(value)


def _evaluate(expr: ir.Expr, env: Mapping[str, float]) -> float:
    if isinstance(expr, ir.Num):
        if expr.unit is not None and expr.unit not in UNITS:
            raise EvalError(f"unknown unit '{expr.unit}'")
        return si_value(expr.value, expr.unit)
    if isinstance(expr, ir.Name):
        if expr.id in env:
            return env[expr.id]
        if expr.id in UNITS:
            return UNITS[expr.id][0]
        if expr.id in CONSTANTS:
            return CONSTANTS[expr.id]
        raise EvalError(f"'{expr.id}' has no constant value here")
    if isinstance(expr, ir.Neg):
        return -_evaluate(expr.operand, env)
    if isinstance(expr, ir.BinOp):
        return _BINARY[expr.op](_evaluate(expr.left, env), _evaluate(expr.right, env))
    return _NUMERIC[expr.fn](*(_evaluate(a, env) for a in expr.args))


# ---- sympy ------------------------------------------------------------------------------------


class Detach(sympy.Function):
    """`detach(x)`: the value of x with no gradient; symbolically, a function with zero derivative."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.S.Zero


class Sigmoid(sympy.Function):
    """`sigmoid(x)`, kept whole so its derivative is the overflow-free `sigmoid(x)*sigmoid(-x)`
    (not `sigmoid(x)*(1 - sigmoid(x))`, whose `1 - sigmoid(x)` cancels to 0 for large x)."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return Sigmoid(self.args[0]) * Sigmoid(-self.args[0])

    @classmethod
    def eval(cls, arg: sympy.Expr) -> sympy.Expr | None:
        return sympy.S.Half if arg == 0 else None


def _rational(value: float) -> sympy.Expr:
    return sympy.Rational(Fraction(repr(value))) if math.isfinite(value) else sympy.Float(value)


_TO_SYMPY: dict[str, Callable[..., sympy.Expr]] = {
    "exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs, "sign": sympy.sign,
    "tanh": sympy.tanh, "sigmoid": Sigmoid, "atan": sympy.atan,
    "erf": sympy.erf, "sin": sympy.sin, "cos": sympy.cos, "min": sympy.Min, "max": sympy.Max,
    "clip": lambda x, lo, hi: sympy.Min(sympy.Max(x, lo), hi),
    "heaviside": lambda x: sympy.Heaviside(x, 0), "detach": Detach,
}


def to_sympy(expr: ir.Expr, symbols: Mapping[str, sympy.Expr]) -> sympy.Expr:
    """Convert to sympy with values in SI. Names resolve through `symbols`, then units and `pi`."""
    if isinstance(expr, ir.Num):
        value = _rational(expr.value)
        return value * _rational(UNITS[expr.unit][0]) if expr.unit else value
    if isinstance(expr, ir.Name):
        if expr.id in symbols:
            return symbols[expr.id]
        if expr.id in UNITS:
            return _rational(UNITS[expr.id][0])
        if expr.id == "pi":
            return sympy.pi
        raise KeyError(expr.id)
    if isinstance(expr, ir.Neg):
        return -to_sympy(expr.operand, symbols)
    if isinstance(expr, ir.BinOp):
        left, right = to_sympy(expr.left, symbols), to_sympy(expr.right, symbols)
        if expr.op == "**" and left.is_number and right.is_number and abs(float(right)) > 64:
            return sympy.Float(float(left)) ** sympy.Float(float(right))  # never a giant exact integer
        return {"+": sympy.Add, "-": lambda a, b: a - b, "*": sympy.Mul, "/": lambda a, b: a / b,
                "**": sympy.Pow}[expr.op](left, right)
    return _TO_SYMPY[expr.fn](*(to_sympy(a, symbols) for a in expr.args))


_FROM_SYMPY_FUNCS: dict[type, str] = {
    sympy.exp: "exp", sympy.log: "log", sympy.Abs: "abs", sympy.sign: "sign", sympy.tanh: "tanh",
    sympy.atan: "atan", sympy.erf: "erf", sympy.sin: "sin", sympy.cos: "cos", Detach: "detach",
    Sigmoid: "sigmoid",
}


def _number(e: sympy.Expr) -> ir.Expr:
    if e is sympy.pi:
        return ir.Name(id="pi")
    if e.is_Integer or e.is_Float:
        v = float(e)
        return ir.Neg(operand=num(-v)) if v < 0 else num(v)
    if e.is_Rational:
        p, q = int(e.p), int(e.q)
        if q <= 1000:
            frac = ir.BinOp(op="/", left=num(abs(p)), right=num(q))
            return ir.Neg(operand=frac) if p < 0 else frac
        v = float(e)
        return ir.Neg(operand=num(-v)) if v < 0 else num(v)
    return num(float(e))


def _product(factors: list[ir.Expr]) -> ir.Expr:
    out = factors[0]
    for f in factors[1:]:
        out = ir.BinOp(op="*", left=out, right=f)
    return out


def from_sympy(e: sympy.Expr) -> ir.Expr:
    """A sympy expression as an IR expression, readable: `a - b`, `x / tau`, `-x`."""
    if e.is_Symbol:
        return ir.Name(id=e.name)
    if e.is_Number or e is sympy.pi:
        return _number(e)
    if e is sympy.E:
        return ir.Call(fn="exp", args=(num(1),))
    if e.is_Add:
        terms = list(e.as_ordered_terms())
        out = from_sympy(terms[0])
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                out = ir.BinOp(op="-", left=out, right=from_sympy(-term))
            else:
                out = ir.BinOp(op="+", left=out, right=from_sympy(term))
        return out
    if e.is_Mul:
        if e.could_extract_minus_sign():
            return ir.Neg(operand=from_sympy(-e))
        numer: list[ir.Expr] = []
        denom: list[ir.Expr] = []
        for factor in e.as_ordered_factors():
            if factor.is_Rational and not factor.is_Integer and factor.q <= 1000:
                if factor.p != 1:
                    numer.append(num(factor.p))
                denom.append(num(factor.q))
            elif factor.is_Pow and factor.exp.is_number and factor.exp.is_negative:
                denom.append(from_sympy(factor.base ** (-factor.exp)))
            else:
                numer.append(from_sympy(factor))
        top = _product(numer) if numer else num(1)
        return ir.BinOp(op="/", left=top, right=_product(denom)) if denom else top
    if e.is_Pow:
        base, exponent = e.as_base_exp()
        if exponent == sympy.S.Half:
            return ir.Call(fn="sqrt", args=(from_sympy(base),))
        if exponent.is_number and exponent.is_negative:
            return ir.BinOp(op="/", left=num(1), right=from_sympy(base ** (-exponent)))
        return ir.BinOp(op="**", left=from_sympy(base), right=from_sympy(exponent))
    if isinstance(e, sympy.Heaviside):
        return ir.Call(fn="heaviside", args=(from_sympy(e.args[0]),))
    if isinstance(e, (sympy.Min, sympy.Max)):
        fn = "min" if isinstance(e, sympy.Min) else "max"
        args = [from_sympy(a) for a in e.args]
        out = args[0]
        for a in args[1:]:
            out = ir.Call(fn=fn, args=(out, a))
        return out
    if e.func in _FROM_SYMPY_FUNCS:
        return ir.Call(fn=_FROM_SYMPY_FUNCS[e.func], args=tuple(from_sympy(a) for a in e.args))
    raise ValueError(f"cannot express {type(e).__name__} in the language: {e}")


# ---- printing ---------------------------------------------------------------------------------

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4}


def _prec(expr: ir.Expr) -> int:
    if isinstance(expr, ir.BinOp):
        return _PRECEDENCE[expr.op]
    if isinstance(expr, ir.Neg):
        return _PRECEDENCE["neg"]
    return 5


def format_number(value: float) -> str:
    """The shortest text that reads back as the same float: `1`, `0.5`, `1e-05`."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def format_expr(expr: ir.Expr, name: Callable[[str], str] = str,
                call: Callable[[str, list[str]], str] | None = None, power: str = "**") -> str:
    """Print with the fewest parentheses. `name` and `call` let a backend map names and functions."""
    if isinstance(expr, ir.Num):
        text = format_number(expr.value)
        return f"{text} {expr.unit}" if expr.unit else text
    if isinstance(expr, ir.Name):
        return name(expr.id)
    if isinstance(expr, ir.Call):
        args = [format_expr(a, name, call, power) for a in expr.args]
        return call(expr.fn, args) if call else f"{expr.fn}({', '.join(args)})"
    if isinstance(expr, ir.Neg):
        inner = format_expr(expr.operand, name, call, power)
        return f"-({inner})" if _prec(expr.operand) < _PRECEDENCE["*"] else f"-{inner}"
    prec = _PRECEDENCE[expr.op]
    left = format_expr(expr.left, name, call, power)
    right = format_expr(expr.right, name, call, power)
    if expr.op == "**":
        if _prec(expr.left) <= prec:
            left = f"({left})"
        if _prec(expr.right) < prec:
            right = f"({right})"
        return f"{left} {power} {right}"
    if _prec(expr.left) < prec:
        left = f"({left})"
    right_needs = _prec(expr.right) < prec or (_prec(expr.right) == prec and expr.op in "-/")
    if right_needs or (expr.op in "*/" and isinstance(expr.right, ir.Neg)):
        right = f"({right})"
    return f"{left} {expr.op} {right}"


# ---- tree maps ----------------------------------------------------------------------------------


def substitute(expr: ir.Expr, mapping: Mapping[str, ir.Expr]) -> ir.Expr:
    """Replace names by expressions (used to inline `let`s), keeping the tree's shape."""
    if isinstance(expr, ir.Name):
        return mapping.get(expr.id, expr)
    if isinstance(expr, ir.Call):
        return expr.model_copy(update={"args": tuple(substitute(a, mapping) for a in expr.args)})
    if isinstance(expr, ir.BinOp):
        left, right = substitute(expr.left, mapping), substitute(expr.right, mapping)
        return expr.model_copy(update={"left": left, "right": right})
    if isinstance(expr, ir.Neg):
        return expr.model_copy(update={"operand": substitute(expr.operand, mapping)})
    return expr


def to_si(expr: ir.Expr, local: set[str] = frozenset()) -> ir.Expr:  # type: ignore[assignment]
    """The same expression with every unit folded into plain SI numbers (`10 ms` -> `0.01`).

    Unit names used as constants (`0.02 / ms`) become numbers too, unless a local name shadows them.
    """
    if isinstance(expr, ir.Num):
        return num(si_value(expr.value, expr.unit)) if expr.unit else expr.model_copy(update={"span": None})
    if isinstance(expr, ir.Name):
        if expr.id in UNITS and expr.id not in local:
            return num(UNITS[expr.id][0])
        return ir.Name(id=expr.id)
    if isinstance(expr, ir.Call):
        return ir.Call(fn=expr.fn, args=tuple(to_si(a, local) for a in expr.args))
    if isinstance(expr, ir.BinOp):
        return ir.BinOp(op=expr.op, left=to_si(expr.left, local), right=to_si(expr.right, local))
    return ir.Neg(operand=to_si(expr.operand, local))
