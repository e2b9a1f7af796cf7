"""The PyTorch backend: prints a lowered spec as one self-contained Python module.

Per neuron (`neuron.py`): a `NamedTuple` of its state and of its params, an `autograd.Function`
for the spike (exact 0/1 forward, the derived surrogate gradient backward), the fused kernels of
its recurrence where it has them (`fused.py`) and an `nn.Module` with `init_state`, `params`,
`step`, `forward` and `run`. Per rule (`rule.py`) an `nn.Module` with `init_state` and `step`.
Per network (`network.py`): an `nn.Module` whose `forward` encodes its inputs and runs each group
of layers layer-major (all T steps of a layer at once) or, inside recurrent cycles, step-major.
"""

from __future__ import annotations

from ... import ir
from ...names import ModuleNames, defined_names
from ...runtime import helpers
from ..base import declarations, module_text
from .network import NetworkEmitter
from .neuron import NeuronEmitter
from .rule import RuleEmitter

# module-level names the generated code defines or imports itself, besides the declarations'
HELPERS = helpers("torch")
MODULE_NAMES = defined_names(HELPERS.values()) | {"torch", "nn", "math", "NamedTuple", "numba"}


def emit_module(lowered: ir.LoweredSpec, names: ModuleNames) -> str:
    """The whole generated module: its docstring, imports, the helpers its code calls, then the code."""
    code = declarations(lowered, names, NeuronEmitter, RuleEmitter, NetworkEmitter)
    return module_text(lowered, code, "Self-contained: imports only torch, math and typing.",
                       ["import torch", "from torch import nn"], HELPERS)
