"""The IR: frozen pydantic models, the contract between the front end and the back ends.

Two layers live here. The *spec IR* (`Spec` and what it holds) is the checked model exactly as
the user wrote it: expressions keep their units as written, names are resolved and validated;
each network that checks clean carries the values its checks evaluated (`NetworkFacts`).
The *lowered IR* (`LoweredSpec`) is what a backend prints: discrete update equations, derived
surrogate gradients, the network's execution plan and every shape. Both round-trip through JSON.
The pieces every model is made of are in `base.py`; a neuron's fused recurrence (`LKernel`) in
`kernel.py`; a network's program (`LProgram`) in `program.py`; all are importable from here.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .base import GATE as GATE
from .base import Arg as Arg
from .base import BinOp as BinOp
from .base import Call as Call
from .base import Expr as Expr
from .base import Model as Model
from .base import Name as Name
from .base import Neg as Neg
from .base import Node as Node
from .base import Num as Num
from .base import Span as Span
from .kernel import KAssign as KAssign
from .kernel import KCountdown as KCountdown
from .kernel import KElem as KElem
from .kernel import KFinite as KFinite
from .kernel import KFlag as KFlag
from .kernel import KIf as KIf
from .kernel import KLoad as KLoad
from .kernel import KPass as KPass
from .kernel import KSelect as KSelect
from .kernel import KSpike as KSpike
from .kernel import KStatement as KStatement
from .kernel import KStore as KStore
from .kernel import KTest as KTest
from .kernel import KTime as KTime
from .kernel import LKernel as LKernel
from .program import Encode as Encode
from .program import LayerRun as LayerRun
from .program import LoopLayer as LoopLayer
from .program import LProgram as LProgram
from .program import OpSlot as OpSlot
from .program import PTensor as PTensor
from .program import RandomDraw as RandomDraw
from .program import Readout as Readout
from .program import Statement as Statement
from .program import StepLoop as StepLoop

# ---- surrogates -------------------------------------------------------------------------------


class Surrogate(Node):
    name: str
    arg: str
    hyper: tuple[Arg, ...] = ()
    form: Literal["smooth", "grad"]
    expr: Expr


class SurrogateRef(Node):
    name: str
    args: tuple[Arg, ...] = ()


# ---- neurons ----------------------------------------------------------------------------------


class Param(Node):
    name: str
    default: Expr
    learnable: bool = False
    per_neuron: bool = False
    low: Expr | None = None
    high: Expr | None = None
    dim: str = "1"


class State(Node):
    name: str
    init: Expr
    scope: Literal["neuron", "pre", "post", "syn"] = "neuron"
    dim: str = "1"


class Input(Node):
    name: str
    default: Expr | None = None
    dim: str = "1"


class Let(Node):
    name: str
    expr: Expr
    dim: str = "1"


class Equation(Node):
    """`dX/dt = rhs` (form "ode") or `X <- rhs` (form "discrete")."""

    var: str
    form: Literal["ode", "discrete"]
    rhs: Expr


class Assign(Node):
    var: str
    op: Literal["=", "+=", "-=", "*="]
    value: Expr


class Spike(Node):
    lhs: Expr
    op: Literal[">", ">="]
    rhs: Expr
    surrogate: SurrogateRef


class OnSpike(Node):
    with_gradient: bool = False
    body: tuple[Assign, ...]


Method = Literal["exact", "exponential_euler", "euler", "rk4"]


class Neuron(Node):
    name: str
    params: tuple[Param, ...] = ()
    states: tuple[State, ...] = ()
    inputs: tuple[Input, ...] = ()
    lets: tuple[Let, ...] = ()
    equations: tuple[Equation, ...] = ()
    method: Method | None = None
    refractory: Expr | None = None
    spike: Spike | None = None
    on_spike: OnSpike | None = None
    uses_units: bool = False


# ---- rules ------------------------------------------------------------------------------------


class OnEvent(Node):
    event: Literal["pre", "post"]
    body: tuple[Assign, ...]


class Clip(Node):
    var: str
    low: Expr
    high: Expr


class Rule(Node):
    name: str
    params: tuple[Param, ...] = ()
    states: tuple[State, ...] = ()
    modulators: tuple[str, ...] = ()
    equations: tuple[Equation, ...] = ()
    on_events: tuple[OnEvent, ...] = ()
    clips: tuple[Clip, ...] = ()
    uses_units: bool = False


# ---- networks ---------------------------------------------------------------------------------


class Encoding(Node):
    name: Literal["direct", "rate", "latency", "delta", "none"]
    args: tuple[Arg, ...] = ()


class NetInput(Node):
    name: str
    shape: tuple[int, ...]
    encoding: Encoding


class Layer(Node):
    name: str
    neuron: str
    overrides: tuple[Arg, ...] = ()
    shape: tuple[int, ...] | None = None


class Op(Node):
    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Arg, ...] = ()


class Endpoint(Node):
    name: str
    var: str | None = None


class RuleRef(Node):
    name: str
    args: tuple[Arg, ...] = ()


class Path(Node):
    src: Endpoint
    ops: tuple[Op, ...] = ()
    dst: Endpoint
    frozen: bool = False
    learn: RuleRef | None = None


class Output(Node):
    name: str
    layer: str
    var: str
    readout: Literal["count", "rate", "last", "max", "trace"]


class Train(Node):
    loss: RuleRef | None = None
    optimizer: RuleRef | None = None
    batch: int | None = None
    epochs: int | None = None


class Network(Node):
    name: str
    dt: Expr | None = None
    steps: int | None = None
    inputs: tuple[NetInput, ...] = ()
    layers: tuple[Layer, ...] = ()
    paths: tuple[Path, ...] = ()
    outputs: tuple[Output, ...] = ()
    train: Train | None = None
    facts: NetworkFacts | None = None  # set by the checker on a network whose checks pass


class Spec(Model):
    """A checked spec: its own declarations and everything it imports, by name."""

    file: str
    surrogates: dict[str, Surrogate] = {}
    neurons: dict[str, Neuron] = {}
    rules: dict[str, Rule] = {}
    networks: dict[str, Network] = {}


# ---- lowered IR -------------------------------------------------------------------------------


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
    kernel: LKernel | None = None  # the fused recurrence; None where it cannot be fused
    kernel_note: str | None = None  # why not
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


class LOp(Model):
    """One op of a path with its arguments evaluated and its output shape."""

    name: str
    args: dict[str, float | int | bool] = {}
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


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


class LTrain(Model):
    loss: str = "ce_count"
    loss_args: dict[str, float] = {}
    optimizer: str = "adam"
    optimizer_args: dict[str, float] = {}
    batch: int = 128
    epochs: int = 1


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


class LoweredSpec(Model):
    file: str
    neurons: dict[str, LNeuron] = {}
    rules: dict[str, LRule] = {}
    networks: dict[str, LNetwork] = {}


# ---- what checking a network evaluated --------------------------------------------------------


class PathFacts(Model):
    """A path's values as the checker evaluated them: its ops (a `dense` without a size gets the
    size of the layer it feeds) and its `learn` arguments in SI."""

    ops: tuple[LOp, ...]
    learn_args: dict[str, float] = {}


class NetworkFacts(Model):
    """The values a network fixes, in SI, as checking it evaluated them: lowering plans the
    network from these and never evaluates the spec again."""

    dt: float
    dt_has_unit: bool
    overrides: dict[str, dict[str, float]] = {}  # layer -> param -> value
    encodings: dict[str, dict[str, float]] = {}  # input -> argument of its encoding -> value
    paths: tuple[PathFacts, ...] = ()  # in the order of `Network.paths`
    train: LTrain = LTrain()


# `Network.facts` names the models above, which reuse the lowered `LOp` and `LTrain`
Network.model_rebuild()
Spec.model_rebuild()


# ---- parsed files (before imports are resolved) -----------------------------------------------


class Import(Node):
    """`from "PATH" import A, B` (names given) or `import "PATH"` (names is None: everything)."""

    path: str
    names: tuple[Name, ...] | None = None


Declaration = Annotated[
    Union[
        Annotated[Surrogate, Field(title="Surrogate")],
        Annotated[Neuron, Field(title="Neuron")],
        Annotated[Rule, Field(title="Rule")],
        Annotated[Network, Field(title="Network")],
    ],
    Field(union_mode="left_to_right"),
]


class Module(Model):
    """One parsed `.snn` file: its imports and declarations in source order."""

    file: str
    imports: tuple[Import, ...] = ()
    declarations: tuple[Declaration, ...] = ()
