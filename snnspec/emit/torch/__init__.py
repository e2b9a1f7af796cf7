"""The PyTorch backend: prints a lowered spec as one self-contained Python module.

Per neuron (`neuron.py`): a `NamedTuple` of its state and of its params, an `autograd.Function`
for the spike (exact 0/1 forward, the derived surrogate gradient backward), the fused kernels of
its recurrence where it has them (`fused.py`) and an `nn.Module` with `init_state`, `params`,
`step`, `forward` and `run`. Per rule (`rule.py`) an `nn.Module` with `init_state` and `step`.
Per network (`network.py`): an `nn.Module` whose `forward` encodes its inputs and runs each group
of layers layer-major (all T steps of a layer at once) or, inside recurrent cycles, step-major.
"""

from __future__ import annotations

import re

from ... import ir
from ...names import ModuleNames, defined_names
from ...runtime import called, helpers
from ..base import declarations, module_docstring
from ..writer import CodeWriter
from .network import NetworkEmitter
from .neuron import NeuronEmitter
from .rule import RuleEmitter

# module-level names the generated code defines or imports itself, besides the declarations'
HELPERS = helpers("torch")
MODULE_NAMES = defined_names(HELPERS.values()) | {"torch", "nn", "math", "NamedTuple", "numba"}


def emit_module(lowered: ir.LoweredSpec, names: ModuleNames) -> str:
    """The whole generated module: its docstring, imports, the helpers its code calls, then the code."""
    text = declarations(lowered, names, NeuronEmitter, RuleEmitter, NetworkEmitter)
    o = CodeWriter(lowered.file)
    module_docstring(o, lowered, "Self-contained: imports only torch, math and typing.")
    o.line()
    used = called(HELPERS, text)
    o.line("from __future__ import annotations")
    o.line()
    if any(re.search(r"\bmath\.", code) for code in (text, *used)):
        o.line("import math")
    o.line("from typing import NamedTuple")
    o.line()
    o.line("import torch")
    o.line("from torch import nn")
    for helper in used:
        o.blank(2)
        o.lines.extend(helper.split("\n"))
    o.blank(2)
    return o.text() + "\n" + text if text.strip() else o.text()
