"""What every backend's emitters share: the error for what a backend cannot print, and the
names of a neuron's state fields and whether its step reads `t` (both backends print them alike)."""

from __future__ import annotations

from .. import ir
from ..expr import names
from .names import Namer

# ops that give the same result for an input repeated over time (a `direct` input's path made
# of these is computed once, on [batch, ...], and repeated)
TIME_INVARIANT = {"dense", "scale", "one_to_one", "flatten", "conv1d", "conv2d", "maxpool", "avgpool", "sumpool",
                  "dropout"}
WEIGHTED = {"dense", "conv1d", "conv2d", "batchnorm", "one_to_one", "dropout"}  # ops held by a module attribute


class UnsupportedOp(Exception):
    """Something a backend does not print (yet); reported as a diagnostic by `emit.generate`."""

    def __init__(self, what: str, path: ir.LPath, reason: str = "is not supported by the torch backend yet"):
        super().__init__(f"'{what}' {reason}")
        self.op = what
        self.path = path


def uses_t(neuron: ir.LNeuron) -> bool:
    """Whether a neuron's step reads the built-in `t` (time since the start of the run)."""
    exprs = [u.value for u in (*neuron.lets, *neuron.updates)]
    if neuron.spike is not None:
        exprs.append(neuron.spike.x)
    if neuron.reset is not None:
        exprs += [u.value for u in neuron.reset.updates]
    return any(x.id == "t" for e in exprs for x in names(e))


def state_fields(neuron: ir.LNeuron) -> dict[str, str]:
    """Spec state name -> field of the neuron's State tuple (as the neuron emitters name them)."""
    fields = Namer()
    return {s.var: fields(s.var) for s in neuron.states}
