"""Expressions: the built-in functions, walking, numeric evaluation, printing, tree maps.

IR expressions (`ir.Num | ir.Name | ir.Call | ir.BinOp | ir.Neg`) are the one representation
the front end, the lowering and the emitters share. Their conversion to and from sympy lives in
`symbolic`, so that parsing and checking never import sympy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

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
    except ZeroDivisionError:
        raise EvalError("a division by zero") from None
    except OverflowError:
        raise EvalError("it overflows a 64-bit float") from None
    except (ValueError, TypeError) as err:
        domain = "math domain" in str(err)
        raise EvalError("a function outside its domain, like the log of 0 or the square root of a negative number"
                        if domain else str(err)) from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise EvalError("the value is not a finite real number")
    return float(value)


def number_value(expr: ir.Expr) -> float | None:
    """The value of an expression of numbers alone; None where it reads any name (a param, a unit, `pi`)
    or is a math error, so that callers fold only what is a plain number in the source."""
    if any(isinstance(node, ir.Name) for node in walk(expr)):
        return None
    try:
        return evaluate(expr, {})
    except EvalError:
        return None


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
