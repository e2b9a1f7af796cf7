"""The program IR: a network's arrays, random streams and ordered statements, decided in lowering
(`lower/program.py`) and printed by every backend."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .base import Model


class PTensor(Model):
    """A row of a network's parameter table: an array the generated code holds, keyed as torch's
    `named_parameters()` / `named_buffers()` name it (the JAX params dicts use the same keys)."""

    key: str
    shape: tuple[int, ...]
    init: Literal["uniform", "ones", "zeros", "neuron", "count"]  # uniform on +-1/sqrt(fan_in); a neuron's value
    fan_in: int | None = None
    role: Literal["learnable", "frozen", "plastic", "statistic"] = "learnable"
    layer: str | None = None  # a neuron param: its layer
    path: int | None = None  # an op's array: its path and op index
    op: int | None = None


class OpSlot(Model):
    """An op that holds arrays (a module attribute in torch, a params key prefix in JAX)."""

    path: int
    op: int
    attr: str


class RandomDraw(Model):
    """One random stream of a run, numbered in this order: rate-coded inputs, then dropout ops."""

    input: str | None = None
    path: int | None = None
    op: int | None = None


class Encode(Model):
    """Encode an input. `sequence`: a [T, batch, ...] sequence is needed (a `direct` input whose
    paths are all static needs none: they are computed once, on [batch, ...])."""

    kind: Literal["encode"] = "encode"
    input: str
    sequence: bool = True


class LayerRun(Model):
    """Run one layer over all steps at once (layer-major) from the currents of `paths`, recording
    the state variables `records`. `per_step_macs`: multiply-adds per sample and step of its paths
    when they may be computed step by step inside the run instead (0: they may not, or too few to gain)."""

    kind: Literal["layer_run"] = "layer_run"
    layer: str
    paths: tuple[int, ...]
    records: tuple[str, ...] = ()
    per_step_macs: int = 0


class LoopLayer(Model):
    """A layer inside a step loop: what paths inside the loop read of it (`now`, this step's value)
    and what outputs or paths after the loop read (`after`, stacked over steps)."""

    layer: str
    now: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


class StepLoop(Model):
    """Layers run step by step, in order, because a recurrent path closes a cycle through them or a
    plastic path's weight changes every step. `outside`: paths from outside the loop, computed before
    it; `carried`: (layer, var) that recurrent paths read at the next step; `plastic`: paths whose rule
    steps after their target layer's step."""

    kind: Literal["step_loop"] = "step_loop"
    layers: tuple[LoopLayer, ...]
    outside: tuple[int, ...] = ()
    carried: tuple[tuple[str, str], ...] = ()
    plastic: tuple[int, ...] = ()
    recurrent: bool = False
    reads_t: bool = False


class Readout(Model):
    kind: Literal["readout"] = "readout"
    output: str
    layer: str
    var: str
    readout: str


Statement = Annotated[Union[Encode, LayerRun, StepLoop, Readout], Field(discriminator="kind")]


class LProgram(Model):
    """Everything a backend prints for a network, decided once: the arrays it holds, its random
    streams, which paths are static (computed once) or computed inside a step loop, its ordered
    statements, and one step of the whole network for streaming use."""

    layer_attrs: dict[str, str]
    op_slots: tuple[OpSlot, ...] = ()
    rule_attrs: dict[int, str] = {}
    params: tuple[PTensor, ...] = ()
    buffers: tuple[PTensor, ...] = ()
    random: tuple[RandomDraw, ...] = ()
    static_paths: tuple[int, ...] = ()
    loop_paths: tuple[int, ...] = ()
    plastic_dense: dict[int, int] = {}
    path_macs: dict[int, int] = {}  # multiply-adds per sample of one application of a path's dense and conv ops
    modulators: tuple[str, ...] = ()
    reads_t: bool = False
    statements: tuple[Statement, ...] = ()
    streaming: StepLoop | None = None  # one step of the whole network, every layer in order (JAX `step`)
