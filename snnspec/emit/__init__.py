"""Backends: thin printers of the lowered IR. `generate(lowered, backend)` returns source text."""

from __future__ import annotations

from .. import ir
from ..diagnostics import Diagnostic, SpecError

BACKENDS = ("torch",)


class BackendError(SpecError):
    """The spec is valid but uses something this backend does not print yet."""


def generate(lowered: ir.LoweredSpec, backend: str = "torch") -> str:
    if backend not in BACKENDS:
        raise BackendError([Diagnostic(message=f"unknown backend '{backend}'",
                                       hint=f"use one of: {', '.join(BACKENDS)}")])
    from .torch import emit_module
    from .torch_network import UnsupportedOp

    try:
        return emit_module(lowered)
    except UnsupportedOp as e:
        net = next(n for n in lowered.networks.values() if e.path in n.paths)
        line = e.path.line or 1
        span = ir.Span(file=net.file, line=line, column=1, end_line=line, end_column=2)
        raise BackendError([Diagnostic(message=f"{e} (network '{net.name}')", span=span,
                                       hint="convolution, pooling, normalisation, dropout, delays, lateral "
                                            "inhibition and plasticity are planned")]) from None
