"""What every backend's emitters share: the error for what a backend cannot print, the visitor
over a network's program, and the names of a neuron's state fields."""

from __future__ import annotations

from .. import ir
from ..names import Namer


class UnsupportedOp(Exception):
    """Something a backend does not print (yet); reported as a diagnostic by `emit.generate`."""

    def __init__(self, what: str, path: ir.LPath, reason: str = "is not supported by the torch backend yet"):
        super().__init__(f"'{what}' {reason}")
        self.op = what
        self.path = path


class ProgramVisitor:
    """Prints a network's program: `visit(statement)` calls the printer's `visit_<Statement>`."""

    def visit(self, statement: ir.Statement) -> None:
        getattr(self, f"visit_{type(statement).__name__}")(statement)


def state_fields(neuron: ir.LNeuron) -> dict[str, str]:
    """Spec state name -> field of the neuron's State tuple (as the neuron emitters name them)."""
    fields = Namer()
    return {s.var: fields(s.var) for s in neuron.states}
