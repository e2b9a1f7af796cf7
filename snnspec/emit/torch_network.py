"""The PyTorch network module: encodings, connections and the execution plan.

Layers outside recurrent cycles run layer-major: the currents of all T steps come from one
op on a [T, batch, ...] tensor, then the neuron's `run` loops over time. Groups of layers
closed by a recurrent path run step-major, in one loop over time. Ops are printed by
`OP_PRINTERS`, one function per op, so new ops are additive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import ir
from .names import Namer, py_name
from .torch import class_name
from .writer import CodeWriter, literal


class UnsupportedOp(Exception):
    """An op the PyTorch backend does not print yet; reported as a diagnostic by the caller."""

    def __init__(self, op: str, path: ir.LPath):
        super().__init__(f"'{op}' is not supported by the torch backend yet")
        self.op = op
        self.path = path


@dataclass
class OpContext:
    """What an op printer needs: the path's module name, and whether tensors carry a time axis."""

    module: str | None
    time_axis: bool


def _dense(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"self.{ctx.module}({value})"


def _scale(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"{value} * {literal(float(op.args['value']))}"


def _one_to_one(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"{value} * self.{ctx.module}"


def _flatten(op: ir.LOp, value: str, ctx: OpContext) -> str:
    return f"{value}.flatten({2 if ctx.time_axis else 1})"


OP_PRINTERS: dict[str, Callable[[ir.LOp, str, OpContext], str]] = {
    "dense": _dense, "scale": _scale, "one_to_one": _one_to_one, "flatten": _flatten,
}
TIME_INVARIANT = {"dense", "scale", "one_to_one", "flatten"}  # the same result for a repeated input


class NetworkEmitter:
    def __init__(self, net: ir.LNetwork, lowered: ir.LoweredSpec, out: CodeWriter):
        self.net = net
        self.lowered = lowered
        self.out = out
        self.cls = class_name(net.name)
        attrs = Namer({"steps", "dt"})
        self.layer_attr = {la.name: attrs(la.name) for la in net.layers}
        self.input_arg = {i.name: py_name(i.name) for i in net.inputs}
        self.path_attr: dict[int, str] = {}
        for p in net.paths:
            weighted = [op for op in p.ops if op.name in ("dense", "one_to_one")]
            if weighted:
                self.path_attr[p.index] = attrs(f"{p.src}_{p.dst}")
        self.layers = {la.name: la for la in net.layers}
        self.neurons = {la.name: lowered.neurons[la.neuron] for la in net.layers}
        local = Namer({"steps", "batch", "i", "self", "torch", "nn", "math", *self.input_arg.values()})
        self.var_name: dict[tuple[str, str], str] = {}
        self.local = local
        self.out_fields = Namer()

    def src(self, line: int | None) -> tuple[str, int | None]:
        return (self.net.file, line)

    def v(self, layer: str, var: str, suffix: str = "") -> str:
        """The local holding `layer.var` (a sequence [T, ...] or, in a step loop, one step)."""
        key = (layer, var + suffix)
        if key not in self.var_name:
            self.var_name[key] = self.local(f"{layer}_{var}{suffix}")
        return self.var_name[key]

    def emit(self) -> None:
        self.check_supported()
        self.emit_output_tuple()
        o = self.out
        o.line(f"class {self.cls}(nn.Module):")
        with o.indent():
            self.emit_docstring()
            o.blank()
            self.emit_init()
            self.emit_forward()
        o.blank(2)

    def check_supported(self) -> None:
        for p in self.net.paths:
            if p.learn is not None:
                raise UnsupportedOp(f"learn {p.learn}", p)
            for op in p.ops:
                if op.name not in OP_PRINTERS:
                    raise UnsupportedOp(op.name, p)

    def emit_output_tuple(self) -> None:
        o = self.out
        o.line(f"class {self.cls}Output(NamedTuple):")
        with o.indent():
            o.docstring(f"What `{self.cls}` returns: one field per `output` line of the spec.")
            for out in self.net.outputs:
                shape = "[T, batch, ...]" if out.readout == "trace" else "[batch, ...]"
                o.line(f"{self.out_fields(out.name)}: torch.Tensor  # {out.layer}.{out.var} {out.readout}, {shape}")
        o.blank(2)

    def emit_docstring(self) -> None:
        net = self.net
        dt = f"{net.dt:g} s" if net.dt_has_unit else f"{net.dt:g} (steps)"
        lines = [f"Network `{net.name}` ({net.file}): dt = {dt}, {net.steps or 'T'} steps.", ""]
        for inp in net.inputs:
            lines.append(f"    input {inp.name}{list(inp.shape)} encode {inp.encoding}")
        for la in net.layers:
            mode = "step-major" if la.step_major else "layer-major"
            lines.append(f"    layer {la.name} = {la.neuron}{list(la.shape)}  ({mode})")
        for p in net.paths:
            ops = " -> ".join(op.name for op in p.ops)
            lines.append(f"    {p.src} -> {ops} -> {p.dst}.{p.dst_input}{'  (recurrent)' if p.recurrent else ''}")
        args = ", ".join(self.input_arg[i.name] for i in net.inputs)
        lines += ["", f"`forward({args})` takes " + "; ".join(
            f"{self.input_arg[i.name]} as {'[T, batch, ...]' if i.encoding in ('none', 'delta') else '[batch, ...]'}"
            for i in net.inputs) + "."]
        self.out.docstring("\n".join(lines))

    def emit_init(self) -> None:
        net, o = self.net, self.out
        o.line("def __init__(self):")
        with o.indent():
            o.line("super().__init__()")
            o.line(f"self.steps = {literal(net.steps or 0)}")
            o.line(f"self.dt = {literal(net.dt)}")
            for la in net.layers:
                neuron = self.neurons[la.name]
                kw = "".join(f", {py_name(k)}={literal(v)}" for k, v in la.overrides.items())
                o.line(f"self.{self.layer_attr[la.name]} = {class_name(neuron.name)}({tuple(la.shape)!r}, "
                       f"dt=self.dt{kw})", self.src(la.line))
            for p in net.paths:
                if p.index not in self.path_attr:
                    continue
                attr = self.path_attr[p.index]
                op = next(op for op in p.ops if op.name in ("dense", "one_to_one"))
                if op.name == "dense":
                    bias = "" if op.args.get("bias", True) else ", bias=False"
                    o.line(f"self.{attr} = nn.Linear({literal(op.in_shape[0])}, {literal(op.out_shape[0])}{bias})",
                           self.src(p.line))
                else:
                    o.line(f"self.{attr} = nn.Parameter(torch.ones({tuple(op.in_shape)!r}))", self.src(p.line))
                if p.frozen:
                    o.line(f"self.{attr}.requires_grad_(False)")
        o.blank()

    # -- forward
    def emit_forward(self) -> None:
        net, o = self.net, self.out
        args = ", ".join(self.input_arg[i.name] for i in net.inputs)
        o.line(f"def forward(self, {args}) -> {self.cls}Output:")
        with o.indent():
            sequences = [i for i in net.inputs if i.encoding in ("none", "delta")]
            first = self.input_arg[(sequences or list(net.inputs))[0].name]
            if sequences:
                o.line(f"steps, batch = {first}.shape[0], {first}.shape[1]")
            else:
                o.line(f"steps, batch = self.steps, {first}.shape[0]")
            for inp in net.inputs:
                self.emit_encoding(inp)
            for group in net.groups:
                if len(group) == 1 and not self.layers[group[0]].step_major:
                    self.emit_layer_major(group[0])
                else:
                    self.emit_step_major(group)
            fields = []
            for out in net.outputs:
                seq = self.v(out.layer, out.var)
                value = {"count": f"{seq}.sum(0)", "rate": f"{seq}.mean(0)", "last": f"{seq}[-1]",
                         "max": f"{seq}.amax(0)", "trace": seq}[out.readout]
                fields.append(f"{self.out_fields(out.name)}={value}")
            o.line(f"return {self.cls}Output({', '.join(fields)})")

    def emit_encoding(self, inp: ir.LInput) -> None:
        o = self.out
        x = self.input_arg[inp.name]
        seq = self.v(inp.name, "seq")
        if inp.encoding == "none":
            o.line(f"{seq} = {x}")
        elif inp.encoding == "direct":
            if any(not self.static_path(p) for p in self.net.paths if p.src == inp.name):
                o.line(f"{seq} = {x}.unsqueeze(0).expand(steps, *{x}.shape)")
        elif inp.encoding == "rate":
            o.line(f"{seq} = torch.bernoulli({x}.clamp(0.0, 1.0).unsqueeze(0).expand(steps, *{x}.shape))")
        elif inp.encoding == "latency":
            tau = inp.args["tau"] / self.net.dt
            th = inp.args["threshold"]
            o.line(f"# latency: one spike at step round(tau * log(x / (x - threshold))), tau = {tau:g} steps")
            o.line(f"fire = torch.round({literal(tau)} * torch.log({x} / ({x} - {literal(th)}).clamp(min=1e-12)))")
            o.line(f"fire = torch.where({x} > {literal(th)}, fire, torch.full_like(fire, float(steps)))")
            o.line(f"ticks = torch.arange(steps, device={x}.device, dtype={x}.dtype).reshape(-1, *([1] * {x}.dim()))")
            o.line(f"{seq} = (ticks == fire.unsqueeze(0)).to({x}.dtype)")
        elif inp.encoding == "delta":
            th = inp.args["threshold"]
            o.line(f"previous = torch.cat([torch.zeros_like({x}[:1]), {x}[:-1]])")
            o.line(f"{seq} = ({x} - previous > {literal(th)}).to({x}.dtype)")

    def static_path(self, p: ir.LPath) -> bool:
        """A path from a `direct` input whose ops give the same result every step: computed once."""
        inputs = {i.name: i for i in self.net.inputs}
        return (p.src in inputs and inputs[p.src].encoding == "direct"
                and all(op.name in TIME_INVARIANT for op in p.ops))

    def path_value(self, p: ir.LPath, time_axis: bool, at_step: bool) -> str:
        """The current a path delivers: over all steps (`time_axis`) or at step i of a loop."""
        inputs = {i.name for i in self.net.inputs}
        if p.src in inputs:
            if self.static_path(p):
                value = self.input_arg[p.src]
            else:
                value = self.v(p.src, "seq") + ("[i]" if at_step else "")
        else:
            value = self.v(p.src, p.src_var, "" if time_axis else "_now")
        ctx = OpContext(self.path_attr.get(p.index), time_axis and not self.static_path(p))
        for op in p.ops:
            value = OP_PRINTERS[op.name](op, value, ctx)
        if self.static_path(p) and (time_axis or at_step):
            value = f"({value}).unsqueeze(0).expand(steps, -1{', -1' * (len(p.ops[-1].out_shape))})" if time_axis \
                else value
        return value

    def currents(self, layer: str, time_axis: bool, paths: list[ir.LPath], at_step: bool = False) -> list[str]:
        """One expression per neuron input of `layer`: the sum of its paths plus the input's default."""
        neuron = self.neurons[layer]
        shape = self.layers[layer].shape
        out = []
        for inp in neuron.inputs:
            terms = [self.path_value(p, time_axis, at_step) for p in paths if p.dst_input == inp.var]
            default = inp.value.value if isinstance(inp.value, ir.Num) else 0.0
            if default:
                terms.append(literal(default))
            if not terms or (len(terms) == 1 and default):
                lead = "steps, batch" if time_axis else "batch"
                ref = f"self.{self.layer_attr[layer]}.init_state(1)[0]"
                terms.insert(0, f"torch.zeros(({lead}, *{tuple(shape)!r}), dtype={ref}.dtype, device={ref}.device)")
            out.append(" + ".join(terms))
        return out

    def needed(self, layer: str) -> set[str]:
        """The variables of `layer` read after its own group (by paths or outputs), besides spike."""
        wanted = {p.src_var for p in self.net.paths if p.src == layer}
        wanted |= {o.var for o in self.net.outputs if o.layer == layer}
        return wanted

    def emit_layer_major(self, layer: str) -> None:
        o = self.out
        la = self.layers[layer]
        attr = self.layer_attr[layer]
        paths = [p for p in self.net.paths if p.dst == layer]
        o.line(f"# layer {layer} = {la.neuron}{list(la.shape)}: all {'steps'} at once")
        currents = self.currents(layer, True, paths)
        names = []
        for inp, value in zip(self.neurons[layer].inputs, currents):
            name = self.local(f"{layer}_{inp.var}")
            line = paths[0].line if paths else None
            o.line(f"{name} = {value}", self.src(line))
            names.append(name)
        states = self.needed(layer) - {"spike"}
        record = bool(states)
        spike = self.v(layer, "spike")
        rec = self.local(f"{layer}_record") if record else "_"
        o.line(f"{spike}, _, {rec} = self.{attr}.run({', '.join(names)}{', record=True' if record else ''})")
        neuron = self.neurons[layer]
        fields = state_fields(neuron)
        for var in sorted(states):
            o.line(f"{self.v(layer, var)} = {rec}.{fields[var]}")

    def emit_step_major(self, group: tuple[str, ...]) -> None:
        o = self.out
        members = set(group)
        o.line(f"# layers {', '.join(group)}: step by step (a recurrent path closes a cycle through them)")
        outside: dict[int, str] = {}
        for layer in group:
            for p in self.net.paths:
                if p.dst == layer and p.src not in members:
                    name = self.local(f"{p.src}_{layer}_current")
                    o.line(f"{name} = {self.path_value(p, True, False)}", self.src(p.line))
                    outside[p.index] = name
        for layer in group:
            attr = self.layer_attr[layer]
            o.line(f"{self.local(layer + '_params')} = self.{attr}.params()")
            o.line(f"{self.local(layer + '_state')} = self.{attr}.init_state(batch)")
            o.line(f"{self.v(layer, 'spike', '_now')} = torch.zeros_like({self.local(layer + '_state')}[0])")
            o.line(f"{self.local(layer + '_history')} = []")
        o.line("for i in range(steps):")
        with o.indent():
            for layer in group:
                neuron = self.neurons[layer]
                fields = state_fields(neuron)
                state = self.local(layer + "_state")
                for var in self.needed_in_loop(layer, group):
                    if var != "spike":
                        o.line(f"{self.v(layer, var, '_now')} = {state}.{fields[var]}")
                paths = [p for p in self.net.paths if p.dst == layer]
                terms_by_input = []
                for inp in neuron.inputs:
                    terms = []
                    for p in paths:
                        if p.dst_input != inp.var:
                            continue
                        terms.append(f"{outside[p.index]}[i]" if p.index in outside
                                     else self.path_value(p, False, True))
                    default = inp.value.value if isinstance(inp.value, ir.Num) else 0.0
                    if default:
                        terms.append(literal(default))
                    terms_by_input.append(" + ".join(terms) if terms else f"torch.zeros_like({state}[0])")
                spike = self.v(layer, "spike", "_now")
                o.line(f"{spike}, {state} = self.{self.layer_attr[layer]}.step("
                       f"{self.local(layer + '_params')}, {', '.join(terms_by_input)}, {state})")
                o.line(f"{self.local(layer + '_history')}.append(({spike}, {state}))")
        for layer in group:
            fields = state_fields(self.neurons[layer])
            history = self.local(layer + "_history")
            o.line(f"{self.v(layer, 'spike')} = torch.stack([h[0] for h in {history}])")
            for var in sorted(self.needed(layer) - {"spike"}):
                o.line(f"{self.v(layer, var)} = torch.stack([h[1].{fields[var]} for h in {history}])")

    def needed_in_loop(self, layer: str, group: tuple[str, ...]) -> set[str]:
        return {p.src_var for p in self.net.paths if p.src == layer and p.dst in group}


def state_fields(neuron: ir.LNeuron) -> dict[str, str]:
    """Spec state name -> field of the neuron's State tuple (as NeuronEmitter names them)."""
    fields = Namer()
    return {s.var: fields(s.var) for s in neuron.states}
