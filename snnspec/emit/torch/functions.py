"""The torch backend's table of array functions for the expression printer, and its clamp."""

from __future__ import annotations

from ..printer import Emit


def _call(fn: str) -> Emit:
    return lambda a, _flags: f"{fn}({', '.join(a)})"


def _min_max(kind: str) -> Emit:
    """`max(a, b)` as `a if a >= b else b` with its gradient (the printer puts what varies first):
    `torch.clamp(a, min=b)`, not `torch.maximum`, which splits the gradient at a tie."""

    def emit(a: list[str], flags: list[bool]) -> str:
        tensor, other = (a[0], a[1]) if flags[0] else (a[1], a[0])
        return f"torch.clamp({tensor}, {'max' if kind == 'min' else 'min'}={other})"

    return emit


def _clip(a: list[str], flags: list[bool]) -> str:
    if flags[1] == flags[2]:
        return f"torch.clamp({a[0]}, {a[1]}, {a[2]})"
    return f"torch.clamp(torch.clamp({a[0]}, min={a[1]}), max={a[2]})"


def clamp(value: str, low: str, high: str, arrays: bool) -> str:
    """`value` clamped to [low, high], the high bound winning; `arrays`: a bound is a tensor."""
    return f"torch.clamp(torch.clamp({value}, min={low}), max={high})" if arrays else f"{value}.clamp({low}, {high})"


TORCH_FUNCTIONS: dict[str, Emit] = {
    **{fn: _call(f"torch.{fn}") for fn in ("exp", "log", "sqrt", "abs", "sign", "tanh", "sigmoid", "atan", "erf",
                                          "sin", "cos")},
    "min": _min_max("min"), "max": _min_max("max"), "clip": _clip,
    "heaviside": lambda a, _f: f"_heaviside({a[0]})",
    "detach": lambda a, _f: f"({a[0]}).detach()" if not a[0].isidentifier() else f"{a[0]}.detach()",
}
