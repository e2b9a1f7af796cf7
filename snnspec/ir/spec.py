"""The spec IR: a checked model exactly as the user wrote it (expressions keep their units as written,
names are resolved and validated), and the parsed files it is checked from."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .base import Arg, Expr, Model, Name, Node
from .facts import NetworkFacts

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
