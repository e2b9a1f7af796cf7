"""The IR: frozen pydantic models, the contract between the front end and the back ends.

Two layers live here. The *spec IR* (`Spec` and what it holds) is the checked model exactly as
the user wrote it: expressions keep their units as written, names are resolved and validated;
each network that checks clean carries the values its checks evaluated (`NetworkFacts`).
The *lowered IR* (`LoweredSpec`) is what a backend prints: discrete update equations, derived
surrogate gradients, the network's execution plan and every shape. Both round-trip through JSON.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

GATE = "gate'"  # in a lowered reset or rule block: the spike gate (no spec can write this name)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(Model):
    """Where a node came from: a file and 1-based line/column of its first and last character."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int


class Node(Model):
    span: Span | None = None


# ---- expressions ------------------------------------------------------------------------------


class Num(Node):
    """A number as written, with its unit (`10 ms` is value 10, unit `ms`)."""

    kind: Literal["num"] = "num"
    value: float
    unit: str | None = None


class Name(Node):
    kind: Literal["name"] = "name"
    id: str


class Call(Node):
    kind: Literal["call"] = "call"
    fn: str
    args: tuple[Expr, ...]


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*", "/", "**"]
    left: Expr
    right: Expr


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: Expr


Expr = Annotated[Union[Num, Name, Call, BinOp, Neg], Field(discriminator="kind")]
# Call, BinOp and Neg name `Expr` before it exists, so pydantic could not finish them. Finished now, their
# schemas are reused by every model below instead of regenerated in each: a third of this module's import.
Call.model_rebuild()
BinOp.model_rebuild()
Neg.model_rebuild()


class Arg(Node):
    """`name = value` in an argument list (overrides, surrogate and op arguments)."""

    name: str
    value: Expr


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
    """`on spike`: each `var` blends to `value` where the neuron spiked."""

    updates: tuple[Update, ...]
    with_gradient: bool = False


# ---- kernel IR: a neuron's fused recurrence, decided in lowering (lower/kernel.py) ------------


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


KStatement = Annotated[Union[KAssign, KLoad, KStore, KTest, KSpike, KSelect, KFlag, KCountdown, KTime, KIf],
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
    when they may be computed step by step inside the run instead (0: they may not)."""

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
    modulators: tuple[str, ...] = ()
    reads_t: bool = False
    statements: tuple[Statement, ...] = ()
    streaming: StepLoop | None = None  # one step of the whole network, every layer in order (JAX `step`)


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
