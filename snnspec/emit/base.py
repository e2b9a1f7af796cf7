"""What every backend's emitters share: the error for what a backend cannot print, the visitor
over a network's program, and the names of a neuron's state fields."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import ir
from .._version import __version__
from ..names import ModuleNames, Namer, class_name
from ..runtime import called
from .writer import CodeWriter, literal


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
            negative = k and term[:1] == "-" and term[1:2].isdigit()  # a negative default: `- 1`, not `+ -1`
            o.line(f"- {term[1:]}" if negative else f"{'+ ' if k else ''}{term}", (file, line))
    o.line(")")


def input_terms(inp: ir.Update, paths: Iterable[ir.LPath], current: Callable[[ir.LPath], str]
                ) -> list[tuple[str, int | None]]:
    """The terms summed into a neuron input, each with its spec line: the current of every path into
    it (`current(path)`), then its default where that is a nonzero number."""
    terms = [(current(p), p.line) for p in paths if p.dst_input == inp.var]
    default = inp.value.value if isinstance(inp.value, ir.Num) else 0.0
    return terms + ([(literal(default), inp.line)] if default else [])


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


def input_shapes(net: ir.LNetwork, arg: dict[str, str]) -> str:
    """How a network's call takes its inputs, for its docstring: `x as [batch, ...]; y as [T, batch, ...]`."""
    return "; ".join(f"{arg[i.name]} as {'[T, batch, ...]' if i.sequence else '[batch, ...]'}" for i in net.inputs)


def reads(body: list[str], name: str) -> bool:
    """Whether the code of `body` (comments aside) reads `name`: a preamble defines only what its body reads."""
    code = "\n".join(line.split("#")[0] for line in body)
    return re.search(rf"\b{re.escape(name)}\b", code) is not None


def sizes_line(net: ir.LNetwork, arg: dict[str, str], steps: str, body: list[str]) -> str | None:
    """`steps, batch = ...` for those of the two that `body` reads (None: neither): from the first
    sequence input, else `steps` and the first input's batch."""
    sequences = [i for i in net.inputs if i.sequence]
    first = arg[(sequences or list(net.inputs))[0].name]
    values = {"steps": f"{first}.shape[0]" if sequences else steps,
              "batch": f"{first}.shape[1]" if sequences else f"{first}.shape[0]"}
    used = [name for name in values if reads(body, name)]
    return f"{', '.join(used)} = {', '.join(values[n] for n in used)}" if used else None


def check_supported(net: ir.LNetwork, printers: Iterable[str], backend: str) -> None:
    """Raise `UnsupportedOp` for an op that `printers` (a backend's op table) does not print."""
    for p in net.paths:
        for op in p.ops:
            if op.name not in printers:
                raise UnsupportedOp(op.name, p, f"is not supported by the {backend} backend yet")


def emit_output_tuple(o: CodeWriter, net: ir.LNetwork, cls: str, fields: Namer, array: str, call: str) -> None:
    """The NamedTuple a network returns (`call`: how its docstring names the call that returns it)."""
    o.named_tuple(f"{cls}Output", f"What `{call}` returns: one field per `output` line of the spec.", [
        f"{fields(out.name)}: {array}  # {out.layer}.{out.var} {out.readout}, "
        f"{'[T, batch, ...]' if out.readout == 'trace' else '[batch, ...]'}" for out in net.outputs])


def declarations(lowered: ir.LoweredSpec, names: ModuleNames, neuron: Callable[..., Any], rule: Callable[..., Any],
                 network: Callable[..., Any]) -> str:
    """The code of every neuron, rule and network of a spec, printed by a backend's three emitters."""
    body = CodeWriter(lowered.file)
    for n in lowered.neurons.values():
        neuron(n, body, names).emit()
    for r in lowered.rules.values():
        rule(r, class_name(r.name)).emit(body)
    for net in lowered.networks.values():
        network(net, lowered, body).emit()
    return body.text()


def module_text(lowered: ir.LoweredSpec, code: str, about: str, imports: Sequence[str], helpers: dict[str, str]
                ) -> str:
    """A whole generated module: its docstring (`about` its imports), the imports, the `helpers` the
    code calls, then the code of its declarations."""
    o = CodeWriter(lowered.file)
    neurons = ", ".join(lowered.neurons) or "none"
    networks = ", ".join(lowered.networks) or "none"
    o.docstring(f"Generated by snnspec {__version__} from {o.source(lowered.file)}. Do not edit: edit the spec and "
                f"rebuild.\n\nNeurons: {neurons}.\nNetworks: {networks}.\n\n{about}")
    o.line()
    used = called(helpers, code)
    o.line("from __future__ import annotations")
    o.line()
    if any(re.search(r"\bmath\.", text) for text in (code, *used)):
        o.line("import math")
    o.line("from typing import NamedTuple")
    o.line()
    for line in imports:
        o.line(line)
    for helper in used:
        o.blank(2)
        o.lines.extend(helper.split("\n"))
    o.blank(2)
    return o.text() + "\n\n" + code if code.strip() else o.text()
