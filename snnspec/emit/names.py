"""Python names for spec identifiers: spec names never shadow what generated code uses.

A name that is a Python keyword or builtin, a module the code imports, an `nn.Module`
attribute, or a tuple method gets a trailing underscore; a name starting with `_` (reserved
for generated internals) gets a leading `x`. Every result is checked against a strict pattern.
"""

from __future__ import annotations

import builtins
import keyword
import re

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

_MODULE_ATTRIBUTES = {
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu",
    "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
    "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers",
    "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
}
# names the generated code itself uses at module, class and method level
_GENERATED = {
    "torch", "math", "typing", "nn", "NamedTuple", "Optional", "jax", "jnp", "lax", "self", "cls", "ctx", "state",
    "params", "p", "spike", "spikes", "states", "record", "init_state", "step", "run", "shape", "dt", "steps",
    "batch", "t", "grad_output", "gate", "count", "index", "key", "inputs", "outputs",
    "PER_STEP_MACS",  # a module constant of the generated JAX code
}
RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | _MODULE_ATTRIBUTES | _GENERATED


def py_name(name: str) -> str:
    """The Python identifier generated code uses for the spec name `name`."""
    out = "x" + name if name.startswith("_") else name
    while out in RESERVED:
        out += "_"
    if not IDENTIFIER.match(out):
        raise ValueError(f"not a safe identifier: {name!r}")
    return out


class Namer:
    """Unique Python names within one scope (a class, a function), spec names first."""

    def __init__(self, taken: set[str] | None = None):
        self.taken = set(taken or ())
        self.names: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self.names:
            out = py_name(name)
            while out in self.taken:
                out += "_"
            self.taken.add(out)
            self.names[name] = out
        return self.names[name]

    def fresh(self, base: str) -> str:
        """A new name every call: `base`, `base_1`, `base_2`, ..."""
        out, k = py_name(base), 0
        while out in self.taken:
            k += 1
            out = py_name(f"{base}_{k}")
        self.taken.add(out)
        return out


def class_name(name: str) -> str:
    """The Python class generated for a neuron, rule or network: its name, capitalised."""
    return py_name(name[:1].upper() + name[1:]) if name[:1].islower() else py_name(name)
