"""Network ops (LANGUAGE.md §5): their arguments and how each transforms a shape.

The checker binds and evaluates every op's arguments and infers its shapes with these, once;
lowering and the emitters read the results (`ir.LOp`), so an op's signature is in exactly one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from . import ir
from .diagnostics import Diagnostics, did_you_mean
from .dims import Scope, dim_of
from .expr import EvalError, evaluate
from .units import DIMENSIONLESS, Dim, dim_name

ArgKind = Literal["int", "float", "bool", "quantity"]
REQUIRED = object()


@dataclass(frozen=True)
class OpSig:
    positional: tuple[str, ...] = ()
    defaults: dict[str, object] = field(default_factory=dict)  # name -> default or REQUIRED
    kinds: dict[str, ArgKind] = field(default_factory=dict)
    weighted: bool = False  # carries trainable weights


_CONV = OpSig(("channels",), {"channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "padding": 0, "bias": True},
              {"channels": "int", "kernel": "int", "stride": "int", "padding": "int", "bias": "bool"}, weighted=True)
_POOL = OpSig(("kernel",), {"kernel": REQUIRED}, {"kernel": "int"})

OPS: dict[str, OpSig] = {
    "dense": OpSig(("features",), {"features": None, "bias": True}, {"features": "int", "bias": "bool"}, weighted=True),
    "conv1d": _CONV,
    "conv2d": _CONV,
    "maxpool": _POOL,
    "avgpool": _POOL,
    "sumpool": _POOL,
    "flatten": OpSig(),
    "dropout": OpSig(("p",), {"p": REQUIRED}, {"p": "float"}),
    "batchnorm": OpSig((), {"momentum": 0.1, "eps": 1e-5}, {"momentum": "float", "eps": "float"}, weighted=True),
    "scale": OpSig(("value",), {"value": REQUIRED}, {"value": "quantity"}),
    "one_to_one": OpSig((), {}, {}, weighted=True),
    "delay": OpSig(("steps",), {"steps": REQUIRED}, {"steps": "int"}),
    "lateral": OpSig(("w",), {"w": REQUIRED}, {"w": "float"}),
}

OpArgs = dict[str, float | int | bool | None]


def op_args(op: ir.Op, diags: Diagnostics) -> tuple[OpArgs, Dim] | None:
    """Bind and evaluate an op's arguments; also return the dimension it multiplies by."""
    sig = OPS.get(op.name)
    if sig is None:
        diags.error(f"unknown op '{op.name}'", op.span, did_you_mean(op.name, OPS) or f"the ops are: {', '.join(OPS)}")
        return None
    given: dict[str, ir.Expr] = {}
    ok = True
    if len(op.args) > len(sig.positional):
        diags.error(f"{op.name} takes at most {len(sig.positional)} positional argument(s), got {len(op.args)}",
                    op.span, f"its arguments: {', '.join(sig.defaults) or 'none'}")
        return None
    for pname, value in zip(sig.positional, op.args):
        given[pname] = value
    for kw in op.kwargs:
        if kw.name not in sig.defaults:
            diags.error(f"{op.name} has no argument '{kw.name}'", kw.span,
                        did_you_mean(kw.name, sig.defaults) or f"its arguments: {', '.join(sig.defaults) or 'none'}")
            ok = False
        elif kw.name in given:
            diags.error(f"argument '{kw.name}' of {op.name} is given twice", kw.span)
            ok = False
        else:
            given[kw.name] = kw.value
    args: OpArgs = {}
    factor = DIMENSIONLESS
    for name, default in sig.defaults.items():
        if name not in given:
            if default is REQUIRED:
                diags.error(f"{op.name} needs the argument '{name}'", op.span, f"write {op.name}({name} = ...)")
                ok = False
            args[name] = default  # type: ignore[assignment]
            continue
        value = _arg_value(op, name, sig.kinds[name], given[name], diags)
        if value is None:
            ok = False
            continue
        args[name], dim = value
        factor = factor * dim
    if ok and not _args_in_range(op, args, diags):
        ok = False
    return (args, factor) if ok else None


def _arg_value(op: ir.Op, name: str, kind: ArgKind, expr: ir.Expr, diags: Diagnostics):  # type: ignore[no-untyped-def]
    if kind == "bool":
        if isinstance(expr, ir.Name) and expr.id in ("true", "false"):
            return expr.id == "true", DIMENSIONLESS
        diags.error(f"argument '{name}' of {op.name} must be true or false", expr.span)
        return None
    dim = dim_of(expr, Scope({}, f"an argument of {op.name}"), diags)
    if dim is None:
        return None
    if kind != "quantity" and not dim.dimensionless:
        diags.error(f"argument '{name}' of {op.name} must be dimensionless, got {dim_name(dim)}", expr.span)
        return None
    try:
        value = evaluate(expr, {})
    except EvalError as err:
        diags.error(f"argument '{name}' of {op.name} has no finite value ({err})", expr.span)
        return None
    if kind == "int":
        if not float(value).is_integer() or abs(value) > 2**31:
            diags.error(f"argument '{name}' of {op.name} must be a whole number, got {value:g}", expr.span)
            return None
        return int(value), DIMENSIONLESS
    return float(value), (dim if kind == "quantity" else DIMENSIONLESS)


def _args_in_range(op: ir.Op, args: OpArgs, diags: Diagnostics) -> bool:
    checks = {
        "features": (1, "at least 1"), "channels": (1, "at least 1"), "kernel": (1, "at least 1"),
        "stride": (1, "at least 1"), "padding": (0, "at least 0"), "steps": (1, "at least 1"),
    }
    for name, (low, words) in checks.items():
        value = args.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
            diags.error(f"argument '{name}' of {op.name} must be {words}, got {value}", op.span)
            return False
    p = args.get("p")
    if op.name == "dropout" and isinstance(p, float) and not 0 <= p < 1:
        diags.error(f"dropout probability must be in [0, 1), got {p:g}", op.span)
        return False
    return True


@dataclass(frozen=True)
class ShapeError:
    """Why an op cannot take a shape: a message and, where there is one, a fix."""

    message: str
    hint: str | None = None


def out_shape(name: str, args: Mapping[str, float | int | bool | None], shape: tuple[int, ...]
              ) -> tuple[int, ...] | ShapeError:
    """The output shape of an op on a (batch-free) input shape, or a `ShapeError` saying why not."""
    shown = ", ".join(map(str, shape))
    if name == "dense":
        if len(shape) != 1:
            return ShapeError(f"dense needs a flat input, got [{', '.join(map(str, shape))}]",
                              "add `-> flatten` before it")
        features = args["features"]
        assert isinstance(features, int)
        return (features,)
    if name in ("conv1d", "conv2d"):
        nd = 1 if name == "conv1d" else 2
        if len(shape) != nd + 1:
            want = "[channels, length]" if nd == 1 else "[channels, height, width]"
            return ShapeError(f"{name} needs a {want} input, got [{', '.join(map(str, shape))}]")
        k, s, p = (int(args[a]) for a in ("kernel", "stride", "padding"))  # type: ignore[arg-type]
        spatial = shape[1:]
        if any(n + 2 * p < k for n in spatial):
            need = "x".join([str(k)] * nd)
            got = "x".join(str(n + 2 * p) for n in spatial)
            return ShapeError(f"{name}(kernel={k}) needs at least {need} input, got {got}"
                              + (f" (with padding {p})" if p else ""), "use a smaller kernel, or pad the input")
        channels = args["channels"]
        assert isinstance(channels, int)
        return (channels, *((n + 2 * p - k) // s + 1 for n in spatial))
    if name in ("maxpool", "avgpool", "sumpool"):
        k = int(args["kernel"])  # type: ignore[arg-type]
        if len(shape) not in (2, 3):
            return ShapeError(f"{name} needs a [channels, length] or [channels, height, width] input, got [{shown}]")
        if any(n < k for n in shape[1:]):
            need = "x".join([str(k)] * (len(shape) - 1))
            return ShapeError(f"{name}({k}) needs at least {need} input, got {'x'.join(map(str, shape[1:]))}")
        return (shape[0], *(n // k for n in shape[1:]))
    if name == "flatten":
        return (math.prod(shape),)
    return shape
