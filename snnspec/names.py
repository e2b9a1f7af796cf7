"""Python names for spec identifiers: spec names never shadow what generated code uses.

A name that is a Python keyword or builtin, a module the code imports, an `nn.Module`
attribute, or a tuple method gets a trailing underscore; a name starting with `_` (reserved
for generated internals) gets a leading `x`. Every result is checked against a strict pattern.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable, Iterable

from .ir import Span

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


# what a NamedTuple field may not be called (besides keywords and names starting with `_`)
_TUPLE_ATTRIBUTES = {"count", "index"}


def field_name(name: str) -> str:
    """The field of a generated NamedTuple (a network's outputs) for the spec name `name`: the name
    itself, as users read it (`out.p`), unless a keyword or a tuple method (`count` -> `count_`)."""
    out = "x" + name if name.startswith("_") else name
    while keyword.iskeyword(out) or out in _TUPLE_ATTRIBUTES:
        out += "_"
    if not IDENTIFIER.match(out):
        raise ValueError(f"not a safe identifier: {name!r}")
    return out


KERNEL_NAME_LIMIT = 32


def short(base: str, limit: int = KERNEL_NAME_LIMIT) -> str:
    """`base` cut to `limit` characters, for the names inside a numba kernel: LLVM truncates long
    ones, and two long spec names that share a start would collide there (`Namer.fresh` keeps them
    unique)."""
    return base if len(base) <= limit else base[:limit].rstrip("_")


class Namer:
    """Unique Python names within one scope (a class, a function), spec names first."""

    def __init__(self, taken: set[str] | None = None, rename: Callable[[str], str] = py_name):
        self.taken = set(taken or ())
        self.rename = rename
        self.names: dict[str, str] = {}
        self.keys: dict[tuple[str, ...], str] = {}

    def __call__(self, name: str) -> str:
        if name not in self.names:
            out = self.rename(name)
            while out in self.taken:
                out += "_"
            self.taken.add(out)
            self.names[name] = out
        return self.names[name]

    def keyed(self, base: str, *key: str) -> str:
        """The name of the thing `key` identifies, fresh on its first use (named after `base`): two keys
        never share a name, even where their bases read the same (layer `a`'s `b_c`, layer `a_b`'s `c`)."""
        if key not in self.keys:
            self.keys[key] = self.fresh(base)
        return self.keys[key]

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


# the public classes generated for each neuron, rule and network, after its class name
PUBLIC_SUFFIXES = {"neuron": ("", "State", "Params", "Spike", "Run"), "network": ("", "Output"),
                   "rule": ("", "State", "Params")}
_DEFINED = re.compile(r"^(?:def|class) ([A-Za-z_][A-Za-z0-9_]*)|^([A-Za-z_][A-Za-z0-9_]*)(?::[^=]*)? =", re.M)


def _where(item: tuple[Span | None, str]) -> tuple[str, int, int]:
    span = item[0]
    return (span.file, span.line, span.column) if span else ("", 0, 0)


def defined_names(sources: Iterable[str]) -> set[str]:
    """The module-level names that pieces of generated source (a backend's helpers) define."""
    return {a or b for text in sources for a, b in _DEFINED.findall(text)}


class ModuleNames:
    """Every module-level name of one generated file, allocated in one namespace.

    A declaration's public classes (`Leaky`, `LeakyState`, ...) keep the names users import; two
    declarations that would share one are recorded in `clashes` (a diagnostic: renaming one would
    surprise). Internal names (kernels, spike functions) are fresh by construction: `base`, else
    `base_1`, `base_2`, ... They start with `_`, which no public name does.
    """

    def __init__(self, reserved: Iterable[str]):
        self.owner: dict[str, str] = {name: "the generated code" for name in reserved}
        self.spans: dict[str, Span | None] = {}  # where each public class's owner is declared
        self.clashes: list[tuple[str, str, str, Span | None]] = []  # (class, owner, earlier owner, where)

    def declare(self, kind: str, name: str, span: Span | None = None) -> str:
        """Claim the public classes of the `kind` declaration `name` (declared at `span`); return its
        class name. A clash is reported at the later of the two declarations."""
        cls = class_name(name)
        owner = f"{kind} '{name}'"
        for suffix in PUBLIC_SUFFIXES[kind]:
            earlier = self.owner.setdefault(cls + suffix, owner)
            if earlier == owner:
                self.spans.setdefault(cls + suffix, span)
                continue
            first, second = sorted([(span, owner), (self.spans.get(cls + suffix), earlier)], key=_where)
            if not any({o, e} == {owner, earlier} for _, o, e, _ in self.clashes):  # one per pair
                self.clashes.append((cls + suffix, second[1], first[1], second[0]))
        return cls

    def internal(self, base: str) -> str:
        """A fresh module-level name for generated internals."""
        assert base.startswith("_"), base
        out, k = base, 0
        while out in self.owner:
            k += 1
            out = f"{base}_{k}"
        self.owner[out] = "the generated code"
        return out
