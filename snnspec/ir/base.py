"""What every IR node is made of: a source span and expressions (the model and the span: `span.py`)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .span import Model, Span

GATE = "gate'"  # in a lowered reset or rule block: the spike gate (no spec can write this name)


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
