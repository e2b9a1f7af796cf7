"""Names ordered by what they use (params by params, lets by lets): the checker reports a cycle,
lowering (which runs only on checked specs) takes the same order."""

from __future__ import annotations

from collections.abc import Mapping
from graphlib import CycleError, TopologicalSorter

from . import ir
from .diagnostics import Diagnostics
from .expr import names


def order_by_dependency(items: Mapping[str, ir.Expr], kind: str, spans: Mapping[str, ir.Span | None],
                        diags: Diagnostics) -> list[str]:
    """Names of `items` ordered so each comes after those it uses; a cycle is reported."""
    graph = {n: {m.id for m in names(e) if m.id in items and m.id != n} for n, e in items.items()}
    for n, e in items.items():
        if any(m.id == n for m in names(e)):
            diags.error(f"{kind} '{n}' is defined in terms of itself", spans.get(n))
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        cycle = err.args[1]
        diags.error(f"{kind}s depend on each other in a cycle: {' -> '.join(cycle)}", spans.get(cycle[0]),
                    f"a {kind} can only use {kind}s that do not depend on it")
        return list(items)
