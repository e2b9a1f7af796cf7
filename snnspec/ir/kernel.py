"""The kernel IR: a neuron's fused recurrence as typed statements, decided in lowering
(`lower/kernel.py`) and printed by a kernel backend (`emit/torch/fused.py`)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .base import Expr, Model


class KElem(Model):
    """An element of a kernel array (an argument id); `index` holds loop indices "t", "t-1", "m",
    "n" (element m of the batch-major layer, neuron n) or constants."""

    array: str
    index: tuple[str | int, ...]


class KAssign(Model):
    """A local from an expression over locals."""

    kind: Literal["assign"] = "assign"
    target: str
    value: Expr
    line: int | None = None


class KLoad(Model):
    kind: Literal["load"] = "load"
    target: str
    src: KElem


class KStore(Model):
    """An element from an expression (`value`) or another element (`src`); `add` accumulates,
    `optional` adds 0.0 where `src`'s array is empty (the gradients of records not asked for)."""

    kind: Literal["store"] = "store"
    dst: KElem
    value: Expr | None = None
    src: KElem | None = None
    add: bool = False
    optional: bool = False
    line: int | None = None


class KTest(Model):
    """A boolean local: `src <= value` or `src == value`."""

    kind: Literal["test"] = "test"
    target: str
    src: KElem
    op: Literal["<=", "=="]
    value: float


class KFinite(Model):
    """A boolean local: the local `value` is finite or the local `gate` is nonzero (a guarded reset)."""

    kind: Literal["finite"] = "finite"
    target: str
    value: str
    gate: str


class KSpike(Model):
    """`target` is 1.0 where `x > 0` (`>=` if inclusive) and the boolean local `mask` holds, else 0.0."""

    kind: Literal["spike"] = "spike"
    target: str
    x: str
    inclusive: bool
    mask: str | None = None


class KSelect(Model):
    """`target` is `then` where the boolean local `mask` holds, else `other` (a local or a number)."""

    kind: Literal["select"] = "select"
    target: str
    mask: str
    then: str | float
    other: str | float


class KFlag(Model):
    """An element set to 1 where the boolean local `mask` holds, else 0."""

    kind: Literal["flag"] = "flag"
    dst: KElem
    mask: str


class KCountdown(Model):
    """The refractory counter: `steps` where the local `gate` is positive, else one less."""

    kind: Literal["countdown"] = "countdown"
    dst: KElem
    gate: str


class KTime(Model):
    """The local `target` holds the time of the step, `t * dt`."""

    kind: Literal["time"] = "time"
    target: str


class KIf(Model):
    """`first_step`: t == 0; `recording`: the record array is not empty."""

    kind: Literal["if"] = "if"
    cond: Literal["first_step", "recording"]
    body: tuple[KStatement, ...]
    orelse: tuple[KStatement, ...] = ()


KStatement = Annotated[Union[KAssign, KLoad, KStore, KTest, KFinite, KSpike, KSelect, KFlag, KCountdown, KTime,
                             KIf],
                       Field(discriminator="kind")]


class KPass(Model):
    """One kernel: for each element, `invariants` (param loads, params-only subexpressions), then
    `step` for each time step (in reverse if `reverse`). `args` are the array and scalar ids it
    takes, in order; "N" (neurons per batch row), "dt" and "steps" are scalars."""

    args: tuple[str, ...]
    reverse: bool = False
    invariants: tuple[KStatement, ...]
    step: tuple[KStatement, ...]


class LKernel(Model):
    """A neuron's fused recurrence: a forward and a backward kernel over all T steps.

    Array ids: `in:<input>` [T, M], `st:<state>` [M] (`st:spiked`, `counter` the refractory
    counter), `pa:<param>` [N], `out` [T, M], `saved` [T, len(saved), M], `rec` and `g_rec`
    [T or 0, fields, M], `active` [T, M], `g_out` [T, M], `lam:<field>` [M], `g:<input>` [T, M],
    `g:<param>` [M]. Locals are spec names, `<state>'` (updated values), `gate'` and `%...`
    for the kernel's own; `locals`/`arrays` give each id the Python name it prefers."""

    inputs: tuple[str, ...]
    states: tuple[str, ...]
    params: tuple[str, ...]
    reads_spiked: bool
    refractory: bool
    reads_t: bool
    grad_params: tuple[str, ...]
    saves_inputs: bool
    saved: tuple[str, ...]  # the states whose updated (pre-reset) values the forward saves per step
    saved_start: tuple[str, ...]  # the fields whose values before the first step the backward reads
    saved_params: tuple[str, ...]  # the params the backward reads
    locals: tuple[tuple[str, str], ...]
    arrays: tuple[tuple[str, str], ...]
    forward: KPass
    backward: KPass
