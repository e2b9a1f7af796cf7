"""Backends: thin printers of the lowered IR. `generate(lowered, backend)` returns source text."""

from __future__ import annotations

from .. import ir
from ..diagnostics import Diagnostic, SpecError

BACKENDS = ("torch", "jax")


class BackendError(SpecError):
    """The spec is valid but uses something this backend does not print yet."""


def generate(lowered: ir.LoweredSpec, backend: str = "torch") -> str:
    if backend not in BACKENDS:
        raise BackendError([Diagnostic(message=f"unknown backend '{backend}'",
                                       hint=f"use one of: {', '.join(BACKENDS)}")])
    from ..lower.rule import UnsupportedRule
    from .base import UnsupportedOp

    if backend == "jax":
        from .jax import emit_module
    else:
        from .torch import emit_module
    clashes = class_clashes(lowered)
    if clashes:
        raise BackendError(clashes)
    try:
        return emit_module(lowered)
    except UnsupportedOp as e:
        net = next(n for n in lowered.networks.values() if e.path in n.paths)
        line = e.path.line or 1
        span = ir.Span(file=net.file, line=line, column=1, end_line=line, end_column=2)
        raise BackendError([Diagnostic(message=f"{e} (network '{net.name}')", span=span)]) from None
    except UnsupportedRule as e:
        raise BackendError([Diagnostic(message=str(e))]) from None


# the module-level names generated for each neuron and network, after its class name
_CLASS_SUFFIXES = {"neuron": ("", "State", "Params", "Spike", "Run"), "network": ("", "Output"),
                   "rule": ("", "State", "Params")}


def class_clashes(lowered: ir.LoweredSpec) -> list[Diagnostic]:
    """Neurons and networks whose generated classes would share a name (`leaky` and `Leaky`, or a
    neuron `AState` next to the state tuple of a neuron `A`): one would silently replace the other."""
    from .names import class_name

    owners: dict[str, str] = {}
    diags = []
    for kind, names in (("neuron", lowered.neurons), ("network", lowered.networks), ("rule", lowered.rules)):
        for name in names:
            owner = f"{kind} '{name}'"
            for suffix in _CLASS_SUFFIXES[kind]:
                cls = class_name(name) + suffix
                if owners.setdefault(cls, owner) != owner:
                    diags.append(Diagnostic(message=f"{owner} and {owners[cls]} would both generate the Python "
                                                    f"class '{cls}'", hint="rename one of them"))
    return diags
