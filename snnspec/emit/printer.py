"""Expression printing shared by the backends.

A backend gives a table of array functions (`torch.exp`, `jnp.exp`, ...) and how each spec
name reads in its code (`p.beta`, `mem`). Subexpressions that hold no array (numbers, `dt`,
`t`, `pi`) print with plain `math`, and subtrees of bare numbers fold to one literal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import ir
from ..expr import names, number_value
from .writer import literal

Emit = Callable[[list[str], list[bool]], str]  # prints a call from its arguments and which are arrays

ATOM, POWER, UNARY, PRODUCT, SUM = 5, 4, 3, 2, 1
_PREC = {"+": SUM, "-": SUM, "*": PRODUCT, "/": PRODUCT, "**": POWER}


def _math_call(fn: str) -> Callable[[list[str]], str]:
    return lambda a: f"math.{fn}({a[0]})"


# each prints one atom; conditionals rather than `float(x > 0)`, which numba does not compile
_MATH: dict[str, Callable[[list[str]], str]] = {
    **{fn: _math_call(fn) for fn in ("exp", "log", "sqrt", "tanh", "atan", "erf", "sin", "cos")},
    "abs": lambda a: f"abs({a[0]})", "sign": lambda a: f"(1.0 if {a[0]} > 0 else -1.0 if {a[0]} < 0 else 0.0)",
    "sigmoid": lambda a: f"(1.0 / (1.0 + math.exp(-({a[0]}))))",
    "min": lambda a: f"min({a[0]}, {a[1]})", "max": lambda a: f"max({a[0]}, {a[1]})",
    "clip": lambda a: f"min(max({a[0]}, {a[1]}), {a[2]})", "heaviside": lambda a: f"(1.0 if {a[0]} > 0 else 0.0)",
    "detach": lambda a: a[0],
}


@dataclass
class Printer:
    """Prints IR expressions for one backend.

    `functions[fn](args, is_array)` prints a call whose arguments include an array;
    `names` maps a spec name to its code (names not in it are scalars: `dt`, `t`). `fixed` are
    the names that never carry a gradient (constant lets among them): `min`, `max` and `clip`
    put an argument that varies first, as the lowering's derivatives do (`symbolic._Select`).
    """

    functions: Mapping[str, Emit]
    names: Mapping[str, str]
    arrays: set[str]
    fixed: set[str] = field(default_factory=lambda: {"t", "dt", "pi"})

    def __call__(self, expr: ir.Expr) -> str:
        return self.print(expr)[0]

    def is_array(self, expr: ir.Expr) -> bool:
        return any(n.id in self.arrays for n in names(expr))

    def varies(self, expr: ir.Expr) -> bool:
        return any(n.id not in self.fixed for n in names(expr))

    def canonical(self, call: ir.Call) -> ir.Call:
        """`max(0, v)` as `max(v, 0)`; `clip(t, lo, v)` as `min(max(t, lo), v)`, so that what varies comes first."""
        if call.fn in ("min", "max") and not self.varies(call.args[0]) and self.varies(call.args[1]):
            return call.model_copy(update={"args": call.args[::-1]})
        if call.fn == "clip" and not self.varies(call.args[0]) and any(self.varies(a) for a in call.args[1:]):
            x, lo, hi = call.args
            return self.canonical(ir.Call(fn="min", args=(self.canonical(ir.Call(fn="max", args=(x, lo))), hi)))
        return call

    def print(self, expr: ir.Expr) -> tuple[str, int]:
        if isinstance(expr, ir.Num):
            return _number(expr.value)
        value = number_value(expr)
        if value is not None:
            return _number(value)
        if isinstance(expr, ir.Name):
            if expr.id == "pi":
                return "math.pi", ATOM
            return self.names.get(expr.id, expr.id), ATOM
        if isinstance(expr, ir.Neg):
            inner, prec = self.print(expr.operand)
            return f"-{_wrap(inner, prec, UNARY if prec != PRODUCT else PRODUCT)}", UNARY
        if isinstance(expr, ir.BinOp):
            return self._binop(expr)
        expr = self.canonical(expr)
        args = [self(a) for a in expr.args]
        flags = [self.is_array(a) for a in expr.args]
        if any(flags):
            return self.functions[expr.fn](args, flags), ATOM
        return _MATH[expr.fn](args), ATOM

    def _binop(self, expr: ir.BinOp) -> tuple[str, int]:
        prec = _PREC[expr.op]
        left, lp = self.print(expr.left)
        right, rp = self.print(expr.right)
        if expr.op == "**":
            return f"{_wrap(left, lp, POWER + 1)} ** {_wrap(right, rp, UNARY)}", POWER
        # the right operand keeps its parentheses at equal precedence: float `a * (b / c)` is
        # not `a * b / c`, and the generated code must compute exactly what the spec wrote
        left = _wrap(left, lp, prec)
        right = _wrap(right, rp, prec + 1)
        if expr.op in "*/" and rp == UNARY:
            right = f"({right})" if not right.startswith("(") else right
        return f"{left} {expr.op} {right}", prec


def _wrap(text: str, prec: int, needed: int) -> str:
    return f"({text})" if prec < needed else text


def _number(value: float) -> tuple[str, int]:
    text = literal(value)
    return text, (UNARY if text.startswith("-") else ATOM)
