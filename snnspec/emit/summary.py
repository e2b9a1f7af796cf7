"""`--target summary`: a network as a human-readable table, printed from its program.

The third target, and the proof that a backend is only a printer: it reads the lowered IR's
program (the parameter table, the statements, the op shapes) and decides nothing. Per network:
its layers with shapes, neuron and schedule; its paths with their ops and the arrays they hold;
the parameter counts by role; the random streams; and the ordered statements of one run, with
the multiply-adds each step costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import prod

from .. import ir
from ..names import ModuleNames
from .base import ProgramVisitor
from .writer import source_name

MODULE_NAMES: set[str] = set()  # a summary defines no Python names


def table(header: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows as left-aligned columns under `header` (numbers right-aligned)."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if c.replace(",", "").isdigit() else c.ljust(w) for c, w in zip(cells, widths)]
        return (indent + "  ".join(out)).rstrip()

    return [line(list(header)), indent + "  ".join("-" * w for w in widths), *map(line, rows)]


def shape(s: Sequence[int]) -> str:
    return "[" + ", ".join(map(str, s)) + "]"


def op_text(op: ir.LOp) -> str:
    """An op with its arguments and what it maps: `dense(784 -> 1000)`, `conv2d(k=5, s=1, p=2)`."""
    if op.name == "dense":
        return f"dense({op.in_shape[0]} -> {op.out_shape[0]})"
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in op.args.items())
    return f"{op.name}({args})" if args else op.name


class NetworkSummary(ProgramVisitor):
    """Prints one network's summary into `lines`."""

    def __init__(self, net: ir.LNetwork, lowered: ir.LoweredSpec):
        assert net.program is not None
        self.net, self.program, self.lowered = net, net.program, lowered
        self.lines: list[str] = []
        self.schedule: list[str] = []

    def emit(self) -> list[str]:
        net, program = self.net, self.program
        dt = f"{net.dt:g} s" if net.dt_has_unit else f"{net.dt:g} (steps)"
        self.lines += [f"network {net.name}: dt = {dt}, {net.steps or 'T (from the input)'} steps", ""]
        self.layers()
        self.paths()
        self.parameters()
        for statement in program.statements:
            self.visit(statement)
        self.lines += ["", "  schedule of one run:"]
        self.lines += [f"    {k}. {text}" for k, text in enumerate(self.schedule, 1)]
        static = set(program.static_paths)
        each = sum(macs for index, macs in program.path_macs.items() if index not in static)
        once = sum(macs for index, macs in program.path_macs.items() if index in static)
        self.lines += ["", f"  multiply-adds per sample: {each:,} each step" + (f", {once:,} once" if once else "")]
        return self.lines

    def layers(self) -> None:
        layer_major = {s.layer for s in self.program.statements if isinstance(s, ir.LayerRun)}
        rows = []
        for la in self.net.layers:
            neuron = self.lowered.neurons[la.neuron]
            learnable = [t for t in self.program.params if t.layer == la.name]
            overrides = ", ".join(f"{k}={v:g}" for k, v in la.overrides.items())
            rows.append([la.name, la.neuron + (f"({overrides})" if overrides else ""), shape(la.shape),
                         ", ".join(s.var for s in neuron.states) or "-", f"{sum(prod(t.shape) for t in learnable):,}",
                         "layer-major" if la.name in layer_major else "step by step"])
        self.lines += table(["layer", "neuron", "shape", "states", "learnable", "runs"], rows) + [""]

    def paths(self) -> None:
        arrays: dict[int, int] = {}
        for t in (*self.program.params, *self.program.buffers):
            if t.path is not None:
                arrays[t.path] = arrays.get(t.path, 0) + prod(t.shape)
        rows = []
        for p in self.net.paths:
            notes = [n for n, on in (("recurrent", p.recurrent), ("frozen", p.frozen), (f"learn {p.learn}", p.learn),
                                     ("static", p.index in self.program.static_paths)) if on]
            rows.append([str(p.index), f"{p.src}.{p.src_var}", " -> ".join(map(op_text, p.ops)) or "-",
                         f"{p.dst}.{p.dst_input}", f"{arrays.get(p.index, 0):,}", ", ".join(notes)])
        self.lines += table(["#", "from", "ops", "to", "arrays", "notes"], rows) + [""]

    def parameters(self) -> None:
        by_role: dict[str, int] = {}
        for t in (*self.program.params, *self.program.buffers):
            by_role[t.role] = by_role.get(t.role, 0) + prod(t.shape)
        counts = ", ".join(f"{n:,} {role}" for role, n in sorted(by_role.items())) or "none"
        self.lines.append(f"  arrays: {counts} ({len(self.program.params)} params, "
                          f"{len(self.program.buffers)} buffers)")
        streams = [f"rate input {d.input}" if d.input else f"dropout on path {d.path}" for d in self.program.random]
        self.lines.append(f"  random streams: {', '.join(streams) or 'none'}")

    def currents(self, paths: Iterable[int]) -> str:
        return ", ".join(f"path {i}" for i in paths) or "no paths"

    def visit_Encode(self, s: ir.Encode) -> None:
        inp = next(i for i in self.net.inputs if i.name == s.input)
        once = "" if s.sequence else "; its static paths computed once"
        self.schedule.append(f"encode {inp.name}{shape(inp.shape)} ({inp.encoding}{once})")

    def visit_LayerRun(self, s: ir.LayerRun) -> None:
        records = f", recording {', '.join(s.records)}" if s.records else ""
        self.schedule.append(f"run {s.layer} over all steps from {self.currents(s.paths)}{records}")

    def visit_StepLoop(self, s: ir.StepLoop) -> None:
        layers = ", ".join(la.layer for la in s.layers)
        why = "recurrent" if s.recurrent else "plastic"
        before = f"; before it {self.currents(s.outside)}" if s.outside else ""
        rules = f"; rules step on {self.currents(s.plastic)}" if s.plastic else ""
        self.schedule.append(f"step loop over {layers} ({why}{before}{rules})")

    def visit_Readout(self, s: ir.Readout) -> None:
        self.schedule.append(f"read out {s.layer}.{s.var} {s.readout} as {s.output}")


def emit_module(lowered: ir.LoweredSpec, names: ModuleNames) -> str:
    """The summary of every network of a spec (and the neurons it declares without a network)."""
    lines = [f"snnspec summary of {source_name(lowered.file, lowered.file)}", ""]
    for net in lowered.networks.values():
        lines += NetworkSummary(net, lowered).emit() + [""]
    used = {la.neuron for net in lowered.networks.values() for la in net.layers}
    for n in lowered.neurons.values():
        if n.name not in used and not n.file.startswith("std/"):
            lines.append(f"neuron {n.name}: states {', '.join(s.var for s in n.states) or '-'}, "
                         f"method {n.method or 'discrete'}, {'spiking' if n.spike else 'non-spiking'}")
    return "\n".join(lines).rstrip() + "\n"
