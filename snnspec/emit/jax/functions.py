"""The jax backend's table of array functions for the expression printer, its clamp and the
dtype its functions default to."""

from __future__ import annotations

from ..printer import Emit


def _call(fn: str) -> Emit:
    return lambda a, _flags: f"{fn}({', '.join(a)})"


def _min_max(kind: str) -> Emit:
    def emit(a: list[str], flags: list[bool]) -> str:
        array, other = (a[0], a[1]) if flags[0] else (a[1], a[0])
        return f"_clamp({array}, {'hi' if kind == 'min' else 'lo'}={other})"

    return emit


def clamp(value: str, low: str, high: str, arrays: bool = True) -> str:
    """`value` clamped to [low, high], the high bound winning; one text for arrays or numbers (torch's
    `clamp` takes `arrays` to choose)."""
    return f"_clamp({value}, {low}, {high})"


# a generated function's `dtype` argument, else JAX's default float (float32 unless x64 is enabled)
DTYPE = "jnp.result_type(float) if dtype is None else dtype"


# the torch table's functions, with torch's gradients: clamps pass the gradient at their bounds
# (`torch.clamp` is inclusive; `jnp.clip` and `jnp.maximum` would halve it there), and `abs` has
# none at 0 (`jnp.abs` has 1)
JAX_FUNCTIONS: dict[str, Emit] = {
    **{fn: _call(f"jnp.{fn}") for fn in ("exp", "log", "sqrt", "sign", "tanh", "sin", "cos")},
    "abs": _call("_abs"),
    "atan": _call("jnp.arctan"), "sigmoid": _call("jax.nn.sigmoid"), "erf": _call("lax.erf"),
    "min": _min_max("min"), "max": _min_max("max"), "clip": lambda a, _f: clamp(a[0], a[1], a[2]),
    "heaviside": lambda a, _f: f"_heaviside({a[0]})",
    "detach": lambda a, _f: f"lax.stop_gradient({a[0]})",
}
