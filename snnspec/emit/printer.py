"""Expression printing shared by the backends.

A backend gives a table of array functions (`torch.exp`, `jnp.exp`, ...) and how each spec
name reads in its code (`p.beta`, `mem`). Subexpressions that hold no array (numbers, `dt`,
`t`, `pi`) print with plain `math`, and subtrees of bare numbers fold to one literal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .. import ir
from ..expr import EvalError, evaluate
from .writer import literal

Emit = Callable[[list[str], list[bool]], str]  # prints a call from its arguments and which are arrays

ATOM, POWER, UNARY, PRODUCT, SUM = 5, 4, 3, 2, 1
_PREC = {"+": SUM, "-": SUM, "*": PRODUCT, "/": PRODUCT, "**": POWER}

_MATH: dict[str, Callable[[list[str]], str]] = {
    "exp": lambda a: f"math.exp({a[0]})", "log": lambda a: f"math.log({a[0]})", "sqrt": lambda a: f"math.sqrt({a[0]})",
    "abs": lambda a: f"abs({a[0]})", "sign": lambda a: f"float(({a[0]} > 0) - ({a[0]} < 0))",
    "tanh": lambda a: f"math.tanh({a[0]})",
    "sigmoid": lambda a: f"1.0 / (1.0 + math.exp(-({a[0]})))", "atan": lambda a: f"math.atan({a[0]})",
    "erf": lambda a: f"math.erf({a[0]})", "sin": lambda a: f"math.sin({a[0]})", "cos": lambda a: f"math.cos({a[0]})",
    "min": lambda a: f"min({a[0]}, {a[1]})", "max": lambda a: f"max({a[0]}, {a[1]})",
    "clip": lambda a: f"min(max({a[0]}, {a[1]}), {a[2]})", "heaviside": lambda a: f"(1.0 if {a[0]} > 0 else 0.0)",
    "detach": lambda a: a[0],
}


@dataclass
class Printer:
    """Prints IR expressions for one backend.

    `functions[fn](args, is_array)` prints a call whose arguments include an array;
    `names` maps a spec name to its code (names not in it are scalars: `dt`, `t`).
    """

    functions: Mapping[str, Callable[[list[str], list[bool]], str]]
    names: Mapping[str, str]
    arrays: set[str]

    def __call__(self, expr: ir.Expr) -> str:
        return self.print(expr)[0]

    def is_array(self, expr: ir.Expr) -> bool:
        from ..expr import names

        return any(n.id in self.arrays for n in names(expr))

    def print(self, expr: ir.Expr) -> tuple[str, int]:
        if not isinstance(expr, (ir.Num, ir.Name)) and _numbers_only(expr):
            try:
                value = evaluate(expr, {})
            except EvalError:
                value = None
            if value is not None:
                text = literal(value)
                return text, (UNARY if text.startswith("-") else ATOM)
        if isinstance(expr, ir.Num):
            text = literal(expr.value)
            return text, (UNARY if text.startswith("-") else ATOM)
        if isinstance(expr, ir.Name):
            if expr.id == "pi":
                return "math.pi", ATOM
            return self.names.get(expr.id, expr.id), ATOM
        if isinstance(expr, ir.Neg):
            inner, prec = self.print(expr.operand)
            return f"-{_wrap(inner, prec, UNARY if prec != PRODUCT else PRODUCT)}", UNARY
        if isinstance(expr, ir.BinOp):
            return self._binop(expr)
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


def _numbers_only(expr: ir.Expr) -> bool:
    from ..expr import walk

    return all(not isinstance(n, ir.Name) for n in walk(expr))
