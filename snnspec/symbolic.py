"""IR expressions to and from sympy, for the lowering's symbolic work (ODEs, surrogates, adjoints).

Kept apart from `expr` because importing sympy costs a noticeable part of a second: only the
`lower` modules that do symbolic work import this one. `to_sympy` converts values to SI as it
goes (exact rationals, so `10 ms` is `1/100`), and `from_sympy` turns a result back into an IR
expression that every backend can print.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction

import sympy

from . import ir
from .expr import num
from .units import UNITS


class Inexpressible(ValueError):
    """A symbolic result the language cannot write: an infinity, a NaN, a complex number, a Dirac delta."""


class Detach(sympy.Function):
    """`detach(x)`: the value of x with no gradient; symbolically, a function with zero derivative.

    A constant is its own detached value, so `min(I, detach(1.17))` compares numbers as sympy must."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.S.Zero

    @classmethod
    def eval(cls, arg: sympy.Expr) -> sympy.Expr | None:
        return arg if arg.is_number else None


class Sigmoid(sympy.Function):
    """`sigmoid(x)`, kept whole so its derivative is the overflow-free `sigmoid(x)*sigmoid(-x)`
    (not `sigmoid(x)*(1 - sigmoid(x))`, whose `1 - sigmoid(x)` cancels to 0 for large x)."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return Sigmoid(self.args[0]) * Sigmoid(-self.args[0])

    @classmethod
    def eval(cls, arg: sympy.Expr) -> sympy.Expr | None:
        return sympy.S.Half if arg == 0 else None

    def _eval_evalf(self, prec: int) -> sympy.Expr:  # a numeric value, so that `min`/`max` can compare it
        return (1 / (1 + sympy.exp(-self.args[0])))._eval_evalf(prec)


_SCALARS = {"t", "dt"}  # symbols every backend holds as a plain number, never as an array


def _varies(e: sympy.Expr) -> bool:
    return any(s.name not in _SCALARS for s in e.free_symbols)


class _Select(sympy.Function):
    """`max(a, b)` as `a if a >= b else b` (`min`: `a <= b`), its derivative the branch taken: at a
    tie, the gradient goes to the first argument. A constant (numbers, `t`, `dt`) never takes it
    from one that varies, so `max(0, v)` is `max(v, 0)`: every backend prints `clamp(v, min=0)`,
    which passes the gradient at the bound (docs/language-notes.md)."""

    keeps: str  # "max" or "min"

    @classmethod
    def eval(cls, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
        if a == b:
            return a
        if a.is_comparable and b.is_comparable:
            return a if (a >= b if cls.keeps == "max" else a <= b) else b
        if not _varies(a) and _varies(b):
            return cls(b, a)
        return None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        a, b = self.args
        other = sympy.Heaviside(b - a, 0) if self.keeps == "max" else sympy.Heaviside(a - b, 0)
        return 1 - other if argindex == 1 else other


class SelectMax(_Select):
    keeps = "max"


class SelectMin(_Select):
    keeps = "min"


def _rational(value: float) -> sympy.Expr:
    return sympy.Rational(Fraction(repr(value))) if math.isfinite(value) else sympy.Float(value)


_TO_SYMPY: dict[str, Callable[..., sympy.Expr]] = {
    "exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs, "sign": sympy.sign,
    "tanh": sympy.tanh, "sigmoid": Sigmoid, "atan": sympy.atan,
    "erf": sympy.erf, "sin": sympy.sin, "cos": sympy.cos, "min": SelectMin, "max": SelectMax,
    "clip": lambda x, lo, hi: SelectMin(SelectMax(x, lo), hi),
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
    args = [to_sympy(a, symbols) for a in expr.args]
    try:
        return _TO_SYMPY[expr.fn](*args)
    except (ValueError, TypeError) as err:  # e.g. `min` of a number sympy cannot compare
        raise Inexpressible(f"{expr.fn}() of {', '.join(map(str, args))}: {err}") from None


_FROM_SYMPY_FUNCS: dict[type, str] = {
    sympy.exp: "exp", sympy.log: "log", sympy.Abs: "abs", sympy.sign: "sign", sympy.tanh: "tanh",
    sympy.atan: "atan", sympy.erf: "erf", sympy.sin: "sin", sympy.cos: "cos", Detach: "detach",
    Sigmoid: "sigmoid", SelectMax: "max", SelectMin: "min",
}


def _number(e: sympy.Expr) -> ir.Expr:
    if not (e.is_real and e.is_finite):
        raise Inexpressible(f"the value {e} is not a finite real number")
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
    if isinstance(e, sympy.re):  # every quantity is real: sympy's derivative of `Abs` of a symbol not
        return from_sympy(e.args[0])  # declared real goes through `re` and `im`
    if isinstance(e, sympy.im):
        return num(0)
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
    raise Inexpressible(f"cannot express {type(e).__name__} in the language: {e}")
