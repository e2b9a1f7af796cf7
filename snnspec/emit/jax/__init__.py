"""The JAX backend: prints a lowered spec as one self-contained Python module of pure functions.

It prints the same lowered IR as the PyTorch backend, through the same expression `Printer` with
a `jnp` function table, and mirrors its structure file for file, so the two give the same numbers.
Per neuron (`neuron.py`): a `NamedTuple` of its state and of its params, a `jax.custom_jvp` spike
and a namespace class of static functions (`init`, `params`, `init_state`, `step`, `run`). Rules
in `rule.py`, networks in `network.py`.
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
HELPERS = helpers("jax")
MODULE_NAMES = defined_names(HELPERS.values()) | {"jax", "jnp", "lax", "math", "NamedTuple"}


def emit_module(lowered: ir.LoweredSpec, names: ModuleNames) -> str:
    """The whole generated module: its docstring, imports, the helpers its code calls, then the code."""
    text = declarations(lowered, names, NeuronEmitter, RuleEmitter, NetworkEmitter)
    o = CodeWriter(lowered.file)
    module_docstring(o, lowered, "Pure JAX functions (jit, grad and vmap work on them); params and states are "
                                 "pytrees.\nSelf-contained: imports only jax, jax.numpy, math and typing.")
    o.line()
    used = called(HELPERS, text)
    o.line("from __future__ import annotations")
    o.line()
    if any(re.search(r"\bmath\.", code) for code in (text, *used)):
        o.line("import math")
    o.line("from typing import NamedTuple")
    o.line()
    o.line("import jax")
    o.line("import jax.numpy as jnp")
    o.line("from jax import lax")
    for helper in used:
        o.blank(2)
        o.lines.extend(helper.split("\n"))
    o.blank(2)
    return o.text() + "\n\n" + text if text.strip() else o.text()
