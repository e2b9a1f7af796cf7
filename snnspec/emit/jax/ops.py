"""The jax backend's ops: one printer per op of a path (`OP_PRINTERS`), given where it is printed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ... import ir
from ...names import Namer
from ..writer import literal


@dataclass
class OpContext:
    """What an op printer needs to know about where it is printed."""

    attr: str | None  # the torch attribute name of this op's weights (the params key prefix)
    time_axis: bool  # arrays are [T, batch, ...]; else [batch, ...] (one step, or a static input)
    at_step: bool  # inside a step function: values that live across steps are loop-carried
    streaming: bool  # the network's `step`: no dropout, batchnorm from running statistics
    param: Callable[[str], str]  # params key -> the code reading it (frozen weights without gradient)
    local: Namer
    pre: list[tuple[str, int | None]] = field(default_factory=list)  # statements (and spec lines) to run first
    carry: list[tuple[str, str]] = field(default_factory=list)  # (name, initial value) carried over steps
    mask: str | None = None  # the dropout mask of this op, if any
    line: int | None = None  # the spec line of the path
    weight: str | None = None  # a plastic dense inside a scan: the local carrying its weight


def _spatial(op: ir.LOp) -> int:
    return len(op.in_shape) - 1


def _dense(op: ir.LOp, value: str, ctx: OpContext) -> str:
    bias = f", {ctx.param(f'{ctx.attr}.bias')}" if op.args.get("bias", True) else ""
    weight = ctx.weight or ctx.param(f"{ctx.attr}.weight")
    return f"_dense({value}, {weight}{bias})"


def _conv(op: ir.LOp, value: str, ctx: OpContext) -> str:
    bias = ctx.param(f"{ctx.attr}.bias") if op.args.get("bias", True) else "None"
    args = (f"{ctx.param(f'{ctx.attr}.weight')}, {bias}, {literal(int(op.args['stride']))}, "
            f"{literal(int(op.args['padding']))}")
    return f"_fold_time(_conv, {value}, {args})" if ctx.time_axis else f"_conv({value}, {args})"


def _pool(op: ir.LOp, value: str, ctx: OpContext) -> str:
    k = int(op.args["kernel"])
    fn = "_maxpool" if op.name == "maxpool" else "_avgpool"
    text = f"{fn}({value}, {literal(k)}, {_spatial(op)})"
    return f"{text} * {literal(k ** _spatial(op))}" if op.name == "sumpool" else text


def _batchnorm(op: ir.LOp, value: str, ctx: OpContext) -> str:
    a = ctx.attr
    keys = [f'"{a}.running_mean"', f'"{a}.running_var"', f'"{a}.num_batches_tracked"']
    stats = f"({', '.join(f'buffers[{k}]' for k in keys)})"
    out = ctx.local.fresh(f"{a}_out")
    axis = 2 if ctx.time_axis else 1
    args = (f"{value}, {ctx.param(f'{a}.weight')}, {ctx.param(f'{a}.bias')}, {stats}, {axis}, "
            f"{'False' if ctx.streaming else 'train'}, {literal(float(op.args['momentum']))}, "
            f"{literal(float(op.args['eps']))}")
    target = "_" if ctx.streaming else f"({', '.join(f'new_buffers[{k}]' for k in keys)})"
    ctx.pre.append((f"{out}, {target} = _batchnorm({args})", ctx.line))
    return out


def _dropout(op: ir.LOp, value: str, ctx: OpContext) -> str:
    if ctx.streaming or ctx.mask is None:
        return value
    return f"_dropout({value}, {ctx.mask})"


def _scale(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"{value} * {literal(float(op.args['value']))}"


def _one_to_one(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"{value} * {ctx.param(str(ctx.attr))}"


def _flatten(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"lax.collapse({value}, {2 if ctx.time_axis else 1})"


def _delay(op: ir.LOp, value: str, ctx: OpContext) -> str:
    steps = int(op.args["steps"])
    if ctx.at_step:
        buffer = ctx.local.fresh("delay_buffer")
        out = ctx.local.fresh("delayed")
        shape = ", ".join(["batch", *map(str, op.in_shape)])
        ctx.carry.append((buffer, f"jnp.zeros(({literal(steps)}, {shape}), dtype)"))
        ctx.pre.append((f"{out}, {buffer} = _delayed({buffer}, {value})", ctx.line))
        return out
    return f"_shift({value}, {literal(steps)})"


def _lateral(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"_lateral({value}, {literal(float(op.args['w']))}, {2 if ctx.time_axis else 1})"


OP_PRINTERS: dict[str, Callable[[ir.LOp, str, OpContext], str]] = {
    "dense": _dense, "conv1d": _conv, "conv2d": _conv, "maxpool": _pool, "avgpool": _pool, "sumpool": _pool,
    "batchnorm": _batchnorm, "dropout": _dropout, "scale": _scale, "one_to_one": _one_to_one,
    "flatten": _flatten, "delay": _delay, "lateral": _lateral,
}
