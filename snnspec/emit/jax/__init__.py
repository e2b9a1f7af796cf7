"""The JAX backend: prints a lowered spec as one self-contained Python module of pure functions.

It prints the same lowered IR as the PyTorch backend, through the same expression `Printer` with
a `jnp` function table, and mirrors its structure file for file, so the two give the same numbers.
Per neuron (`neuron.py`): a `NamedTuple` of its state and of its params, a `jax.custom_jvp` spike
and a namespace class of static functions (`init`, `params`, `init_state`, `step`, `run`). Rules
in `rule.py`, networks in `network.py`.
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
HELPERS = helpers("jax")
MODULE_NAMES = defined_names(HELPERS.values()) | {"jax", "jnp", "lax", "math", "NamedTuple"}


def emit_module(lowered: ir.LoweredSpec, names: ModuleNames) -> str:
    """The whole generated module: its docstring, imports, the helpers its code calls, then the code."""
    code = declarations(lowered, names, NeuronEmitter, RuleEmitter, NetworkEmitter)
    return module_text(lowered, code, "Pure JAX functions (jit, grad and vmap work on them); params and states are "
                       "pytrees.\nSelf-contained: imports only jax, jax.numpy, math and typing.",
                       ["import jax", "import jax.numpy as jnp", "from jax import lax"], HELPERS)
