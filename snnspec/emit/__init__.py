"""Backends: thin printers of the lowered IR. `generate(lowered, backend)` returns source text."""

from __future__ import annotations

from .. import ir
from ..depth import recursion_room
from ..diagnostics import Diagnostic, SpecError
from ..names import ModuleNames

BACKENDS = ("torch", "jax", "summary")  # summary: a table of each network, not code


class BackendError(SpecError):
    """The spec is valid but uses something this backend does not print yet."""


@recursion_room()  # the printers walk expressions as deep as the parser allows
def generate(lowered: ir.LoweredSpec, backend: str = "torch") -> str:
    if backend not in BACKENDS:
        raise BackendError([Diagnostic(message=f"unknown backend '{backend}'",
                                       hint=f"use one of: {', '.join(BACKENDS)}")])
    from .base import UnsupportedOp

    if backend == "jax":
        from .jax import MODULE_NAMES, emit_module
    elif backend == "summary":
        from .summary import MODULE_NAMES, emit_module
    else:
        from .torch import MODULE_NAMES, emit_module
    names = ModuleNames(MODULE_NAMES)
    for kind, decls in (("neuron", lowered.neurons), ("network", lowered.networks), ("rule", lowered.rules)):
        for name, decl in decls.items():
            names.declare(kind, name, decl.span)
    if names.clashes:
        raise BackendError([Diagnostic(message=f"{owner} and {earlier} would both generate the Python class '{cls}'",
                                       span=span, hint="rename one of them")
                            for cls, owner, earlier, span in names.clashes])
    try:
        return emit_module(lowered, names)
    except UnsupportedOp as e:
        net = next(n for n in lowered.networks.values() if e.path in n.paths)
        line = e.path.line or 1
        span = ir.Span(file=net.file, line=line, column=1, end_line=line, end_column=2)
        raise BackendError([Diagnostic(message=f"{e} (network '{net.name}')", span=span)]) from None

