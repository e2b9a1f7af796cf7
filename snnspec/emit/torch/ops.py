"""The torch backend's ops: one printer per op of a path (`OP_PRINTERS`), given where it is printed,
and the module (or parameter) an op with arrays holds (`op_module`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ... import ir
from ...names import Namer
from ..writer import literal


@dataclass
class OpContext:
    """What an op printer needs to know about where it is printed."""

    attr: str | None  # the module attribute holding this op's weights, if it has one
    time_axis: bool  # tensors are [T, batch, ...]; else [batch, ...] (one step, or a static input)
    at_step: bool  # inside a step loop: state that lives across steps goes into `setup`
    setup: list[str]  # lines to run once before the step loop
    local: Namer
    like: str  # a tensor whose dtype and device new tensors take
    weight: str | None = None  # a plastic dense: the local holding this step's weight

    @property
    def features(self) -> int:
        """The first axis after the batch (and time) axes."""
        return 2 if self.time_axis else 1


def _folded(fn: str, value: str, ctx: OpContext, *args: str) -> str:
    """`fn(value, *args)`, which sees [T*batch, C, ...] in one call (`_fold_time`) when there is a time axis."""
    call = ", ".join([value, *args])
    return f"_fold_time({fn}, {call})" if ctx.time_axis else f"{fn}({call})"


def _dense(op: ir.LOp, value: str, ctx: OpContext) -> str:
    if ctx.weight is not None:  # plastic: the weight of this step, not the module's
        return f"nn.functional.linear({value}, {ctx.weight}, self.{ctx.attr}.bias)"
    return f"self.{ctx.attr}({value})"


def _per_sample(op: ir.LOp, value: str, ctx: OpContext) -> str:
    """Convolution and batchnorm: per sample, on the folded time axis."""
    return _folded(f"self.{ctx.attr}", value, ctx)


def _pool(op: ir.LOp, value: str, ctx: OpContext) -> str:
    spatial, k = len(op.in_shape) - 1, int(op.args["kernel"])
    fn = f"nn.functional.{'max' if op.name == 'maxpool' else 'avg'}_pool{spatial}d"
    text = _folded(fn, value, ctx, str(k))
    return f"({text} * {literal(k ** spatial)})" if op.name == "sumpool" else text


def _dropout(op: ir.LOp, value: str, ctx: OpContext) -> str:
    if ctx.at_step:  # one mask per sequence: drawn before the loop
        mask = ctx.local.fresh(f"{ctx.attr}_mask")
        shape = ", ".join(["batch", *map(str, op.in_shape)])
        ctx.setup.append(f"{mask} = self.{ctx.attr}.draw(({shape}), {ctx.like})")
        return f"self.{ctx.attr}({value}, mask={mask})"
    return f"self.{ctx.attr}({value}, time_axis={ctx.time_axis})"


def _scale(op: ir.LOp, value: str, ctx: OpContext) -> str:
    factor = float(op.args["value"])
    return value if factor == 1 else f"{value} * {literal(factor)}"  # `scale(1)`: an identity shortcut


def _one_to_one(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"{value} * self.{ctx.attr}"


def _flatten(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"{value}.flatten({ctx.features})"


def _delay(op: ir.LOp, value: str, ctx: OpContext) -> str:
    steps = int(op.args["steps"])
    if ctx.at_step:
        buffer = ctx.local.fresh("delay_buffer")
        ctx.setup.append(f"{buffer} = []")
        return f"_delayed({buffer}, {value}, {steps})"
    return f"_shift({value}, {steps})"


def _lateral(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"_lateral({value}, {literal(float(op.args['w']))}, {ctx.features})"


OP_PRINTERS: dict[str, Callable[[ir.LOp, str, OpContext], str]] = {
    "dense": _dense, "conv1d": _per_sample, "conv2d": _per_sample, "maxpool": _pool, "avgpool": _pool,
    "sumpool": _pool, "batchnorm": _per_sample, "dropout": _dropout, "scale": _scale, "one_to_one": _one_to_one,
    "flatten": _flatten, "delay": _delay, "lateral": _lateral,
}


def op_module(op: ir.LOp) -> str:
    """The constructor of the module (or parameter) an op holds."""
    a = op.args
    bias = "" if a.get("bias", True) else ", bias=False"
    if op.name == "dense":
        return f"nn.Linear({literal(op.in_shape[0])}, {literal(op.out_shape[0])}{bias})"
    if op.name in ("conv1d", "conv2d"):
        return (f"nn.Conv{op.name[-2:]}({literal(op.in_shape[0])}, {literal(int(a['channels']))}, "
                f"kernel_size={literal(int(a['kernel']))}, stride={literal(int(a['stride']))}, "
                f"padding={literal(int(a['padding']))}{bias})")
    if op.name == "batchnorm":
        kind = "2d" if len(op.in_shape) == 3 else "1d"
        return (f"nn.BatchNorm{kind}({literal(op.in_shape[0])}, momentum={literal(float(a['momentum']))}, "
                f"eps={literal(float(a['eps']))})")
    if op.name == "dropout":
        return f"SequenceDropout({literal(float(a['p']))})"
    return f"nn.Parameter(torch.ones({tuple(op.in_shape)!r}))"
