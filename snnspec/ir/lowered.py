"""The lowered IR: what a backend prints. Discrete update equations, derived surrogate gradients, each
neuron's fused recurrence (`kernel.py`), the network's execution plan and program (`program.py`)."""

from __future__ import annotations

from typing import Literal

from .base import BinOp, Expr, Model, Name, Span
from .facts import LOp, LTrain
from .kernel import LKernel
from .program import LProgram
from .spec import Clip, Method


class LParam(Model):
    """A param of a lowered neuron or rule. `default` may use `dt` and earlier params."""

    name: str
    default: Expr
    learnable: bool = False
    per_neuron: bool = False
    low: Expr | None = None
    high: Expr | None = None
    depends_on: tuple[str, ...] = ()
    line: int | None = None


class Update(Model):
    """`var` becomes `value`, computed from the values before the update (all at once)."""

    var: str
    value: Expr
    line: int | None = None


class LSpike(Model):
    """The spike `heaviside(x)` with `x = lhs - rhs`, and the surrogate gradient `ds/dx`."""

    x: Expr
    inclusive: bool
    surrogate: str
    grad: Expr
    grad_var: str = "x"
    grad_args: tuple[str, ...] = ()  # what `grad` reads besides `grad_var` (params, states): the spike's arguments
    line: int | None = None


class LReset(Model):
    """`on spike`: each `var` blends to `value` where the neuron spiked: `var - gate * (var - value)`
    (`var + gate * change` for `+=`, `-` for `-=`), so that a surrogate gradient can flow into it.

    `guarded` names the vars whose value (or change) may be inf or NaN on a step without a spike
    (`1 / v`), where `0 * inf` would make the blend NaN: there the value is replaced by a finite
    fallback (`var`, or 0 for a change) unless the neuron spiked, `where(gate != 0 | isfinite(value),
    value, fallback)` — the reset runs only on spiking steps, as in Brian2. The other vars keep
    the plain blend, printed as it always was."""

    updates: tuple[Update, ...]
    with_gradient: bool = False
    guarded: tuple[str, ...] = ()


def reset_change(var: str, value: Expr) -> tuple[Literal["=", "+", "-"], Expr]:
    """How a reset of `var` blends: ("+", c) for `var + c` (`+=`), ("-", c) for `-=`, else ("=", value)."""
    if isinstance(value, BinOp) and isinstance(value.left, Name) and value.left.id == var:
        op = value.op
        if op == "+" or op == "-":  # not `in`: mypy narrows the Literal only this way
            return op, value.right
    return "=", value


class LNeuron(Model):
    name: str
    file: str
    method: Method | None
    method_note: str | None = None
    params: tuple[LParam, ...]
    states: tuple[Update, ...]
    inputs: tuple[Update, ...]
    lets: tuple[Update, ...]
    updates: tuple[Update, ...]
    spike: LSpike | None = None
    reset: LReset | None = None
    refractory: Expr | None = None
    uses_units: bool = False
    equations: tuple[str, ...] = ()
    output: str | None = None  # what a step returns: "spike", or for a non-spiking neuron a state
    live_params: tuple[str, ...] = ()  # derived params of learnable ones: recomputed on every forward
    reads_t: bool = False  # a step reads the built-in `t` (time since the start of the run)
    reads_spiked: bool = False  # a step reads `spiked` (whether it spiked at the step before)
    constant_lets: tuple[str, ...] = ()  # lets of `t`, `dt`, `pi` and numbers only: they carry no gradient
    number_lets: tuple[str, ...] = ()  # lets of `dt`, `pi` and numbers only: plain numbers (`t` is an array)
    kernel: LKernel | None = None  # the fused recurrence; None where it cannot be fused
    kernel_note: str | None = None  # why not
    span: Span | None = None  # the declaration's name, for diagnostics about the generated code
    # forward Euler's decay rates: for `var`, -d(rhs)/d(var) where it is constant (params and dt
    # only); Euler is unstable once dt * rate >= 2, a warning wherever a network fixes dt
    euler_rates: tuple[Update, ...] = ()


class LRuleAssignment(Model):
    """`var = value` for every sample of a rule step. For `w` (shared by the batch) the new weight is
    the batch mean: `w + mean(value)` / `w - mean(value)` when `op` is "+" / "-" (`value` is then the
    change), else `mean(value)`. In an `on` block, `var'` is the value before the block and `gate'` the
    gate (the spikes of that side)."""

    var: str
    scope: str
    value: Expr
    line: int | None = None
    op: Literal["+", "-"] | None = None


class LRuleBlock(Model):
    """Simultaneous assignments: the rule's own updates (`event` None), or `on pre` / `on post`."""

    event: Literal["pre", "post"] | None = None
    assignments: tuple[LRuleAssignment, ...]


class LRule(Model):
    """A lowered rule. `on_pre`/`on_post` updates are sequential, like `on spike`; `blocks` is one step
    as a backend prints it (updates, then `on pre`, then `on post`), checked against the scope rules."""

    name: str
    file: str
    method: Method | None
    method_note: str | None = None
    params: tuple[LParam, ...]
    states: tuple[Update, ...]
    scopes: dict[str, Literal["neuron", "pre", "post", "syn"]]
    modulators: tuple[str, ...]
    updates: tuple[Update, ...]
    on_pre: tuple[Update, ...] = ()
    on_post: tuple[Update, ...] = ()
    clips: tuple[Clip, ...] = ()
    blocks: tuple[LRuleBlock, ...] = ()
    span: Span | None = None  # the declaration's name, for diagnostics about the generated code


class LPath(Model):
    index: int
    src: str
    src_var: str
    dst: str
    dst_input: str
    ops: tuple[LOp, ...]
    recurrent: bool
    frozen: bool = False
    learn: str | None = None
    learn_args: dict[str, float] = {}
    line: int | None = None


class LInput(Model):
    name: str
    shape: tuple[int, ...]
    encoding: str
    args: dict[str, float] = {}
    line: int | None = None

    @property
    def sequence(self) -> bool:
        """Whether the network takes it as a sequence [T, batch, ...] (else [batch, ...], encoded)."""
        return self.encoding in ("none", "delta")


class LLayer(Model):
    name: str
    neuron: str
    shape: tuple[int, ...]
    overrides: dict[str, float] = {}
    step_major: bool = False
    line: int | None = None


class LOutput(Model):
    name: str
    layer: str
    var: str
    readout: str


class LNetwork(Model):
    name: str
    file: str
    dt: float
    dt_has_unit: bool
    steps: int | None
    inputs: tuple[LInput, ...]
    layers: tuple[LLayer, ...]
    paths: tuple[LPath, ...]
    groups: tuple[tuple[str, ...], ...]
    outputs: tuple[LOutput, ...]
    train: LTrain
    program: LProgram | None = None
    span: Span | None = None  # the declaration's name, for diagnostics about the generated code


class LoweredSpec(Model):
    file: str
    neurons: dict[str, LNeuron] = {}
    rules: dict[str, LRule] = {}
    networks: dict[str, LNetwork] = {}
