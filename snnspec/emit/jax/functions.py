"""The jax backend's table of array functions for the expression printer."""

from __future__ import annotations

from ..printer import Emit


def _call(fn: str) -> Emit:
    return lambda a, _flags: f"{fn}({', '.join(a)})"


def _min_max(kind: str) -> Emit:
    def emit(a: list[str], flags: list[bool]) -> str:
        array, other = (a[0], a[1]) if flags[0] else (a[1], a[0])
        return f"_clamp({array}, {'hi' if kind == 'min' else 'lo'}={other})"

    return emit


def _clip(a: list[str], flags: list[bool]) -> str:
    return f"_clamp({a[0]}, {a[1]}, {a[2]})"


# the torch table's functions, with torch's gradients: clamps pass the gradient at their bounds
# (`torch.clamp` is inclusive; `jnp.clip` and `jnp.maximum` would halve it there), and `abs` has
# none at 0 (`jnp.abs` has 1)
JAX_FUNCTIONS: dict[str, Emit] = {
    **{fn: _call(f"jnp.{fn}") for fn in ("exp", "log", "sqrt", "sign", "tanh", "sin", "cos")},
    "abs": _call("_abs"),
    "atan": _call("jnp.arctan"), "sigmoid": _call("jax.nn.sigmoid"), "erf": _call("lax.erf"),
    "min": _min_max("min"), "max": _min_max("max"), "clip": _clip,
    "heaviside": lambda a, _f: f"_heaviside({a[0]})",
    "detach": lambda a, _f: f"lax.stop_gradient({a[0]})",
}
