"""What every backend's emitters share: the error for what a backend cannot print, the visitor
over a network's program, and the names of a neuron's state fields."""

from __future__ import annotations

from collections.abc import Iterable

from .. import ir
from ..names import Namer
from .writer import CodeWriter


class UnsupportedOp(Exception):
    """Something a backend does not print (yet); reported as a diagnostic by `emit.generate`."""

    def __init__(self, what: str, path: ir.LPath, reason: str):
        super().__init__(f"'{what}' {reason}")
        self.op = what
        self.path = path


class ProgramVisitor:
    """Prints a network's program: `visit(statement)` calls the printer's `visit_<Statement>`."""

    def visit(self, statement: ir.Statement) -> None:
        getattr(self, f"visit_{type(statement).__name__}")(statement)


def state_fields(neuron: ir.LNeuron) -> dict[str, str]:
    """Spec state name -> field of the neuron's State tuple (as the neuron emitters name them)."""
    fields = Namer()
    return {s.var: fields(s.var) for s in neuron.states}


def emit_sum(o: CodeWriter, target: str, terms: list[tuple[str, int | None]], file: str) -> None:
    """`target = a + b + ...`: one term per line, each with its spec line, when there are several."""
    if len(terms) == 1:
        o.line(f"{target} = {terms[0][0]}", (file, terms[0][1]))
        return
    o.line(f"{target} = (")
    with o.indent():
        for k, (term, line) in enumerate(terms):
            o.line(f"{'+ ' if k else ''}{term}", (file, line))
    o.line(")")


def plan_lines(net: ir.LNetwork, o: CodeWriter) -> list[str]:
    """The head of a network's docstring: dt, steps, and its inputs, layers and paths as declared."""
    dt = f"{net.dt:g} s" if net.dt_has_unit else f"{net.dt:g} (steps)"
    lines = [f"Network `{net.name}` ({o.source(net.file)}): dt = {dt}, {net.steps or 'T'} steps.", ""]
    lines += [f"    input {inp.name}{list(inp.shape)} encode {inp.encoding}" for inp in net.inputs]
    for la in net.layers:
        mode = "step-major" if la.step_major else "layer-major"
        lines.append(f"    layer {la.name} = {la.neuron}{list(la.shape)}  ({mode})")
    for p in net.paths:
        ops = " -> ".join(op.name for op in p.ops)
        lines.append(f"    {p.src} -> {ops} -> {p.dst}.{p.dst_input}{'  (recurrent)' if p.recurrent else ''}")
    return lines


def check_supported(net: ir.LNetwork, printers: Iterable[str], backend: str) -> None:
    """Raise `UnsupportedOp` for an op that `printers` (a backend's op table) does not print."""
    for p in net.paths:
        for op in p.ops:
            if op.name not in printers:
                raise UnsupportedOp(op.name, p, f"is not supported by the {backend} backend yet")


def emit_output_tuple(o: CodeWriter, net: ir.LNetwork, cls: str, fields: Namer, array: str, call: str) -> None:
    """The NamedTuple a network returns (`call`: how its docstring names the call that returns it)."""
    o.line(f"class {cls}Output(NamedTuple):")
    with o.indent():
        o.docstring(f"What `{call}` returns: one field per `output` line of the spec.")
        for out in net.outputs:
            shape = "[T, batch, ...]" if out.readout == "trace" else "[batch, ...]"
            o.line(f"{fields(out.name)}: {array}  # {out.layer}.{out.var} {out.readout}, {shape}")
    o.blank(2)
