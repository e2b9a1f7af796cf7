"""The IR: frozen pydantic models, the contract between the front end and the back ends.

Two layers live here. The *spec IR* (`Spec` and what it holds) is the checked model exactly as
the user wrote it: expressions keep their units as written, names are resolved and validated.
The *lowered IR* (`LoweredSpec`) is what a backend prints: discrete update equations, derived
surrogate gradients, the network's execution plan and every shape. Both round-trip through JSON.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


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


class LRule(Model):
    """A lowered rule. `on_pre`/`on_post` updates are sequential, like `on spike`."""

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


class LoweredSpec(Model):
    file: str
    neurons: dict[str, LNeuron] = {}
    rules: dict[str, LRule] = {}
    networks: dict[str, LNetwork] = {}


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
