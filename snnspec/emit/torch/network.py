"""The PyTorch network module: its layers, ops and rules as submodules, and `forward`, which prints
the network's program: encode each input, run each layer layer-major (the currents of all T steps
from one op on [T, batch, ...], then the neuron's `run`) or a group of layers step by step
(recurrent cycles, plastic weights), then read out the outputs. Ops are printed by `OP_PRINTERS`.
"""

from __future__ import annotations

from ... import ir
from ...names import Namer, class_name, field_name, py_name
from ..base import (
    ProgramVisitor,
    check_supported,
    emit_output_tuple,
    emit_sum,
    input_shapes,
    input_terms,
    plan_lines,
    sizes_line,
    state_fields,
)
from ..writer import CodeWriter, literal
from .ops import OP_PRINTERS, OpContext, op_module


def keywords(values: dict[str, float]) -> str:
    """Spec values (a layer's overrides, a rule's arguments) as keyword arguments after others."""
    return "".join(f", {py_name(k)}={literal(v)}" for k, v in values.items())


class NetworkEmitter(ProgramVisitor):
    def __init__(self, net: ir.LNetwork, lowered: ir.LoweredSpec, out: CodeWriter):
        self.net, self.lowered, self.out = net, lowered, out
        self.cls = class_name(net.name)
        assert net.program is not None
        self.program = net.program
        # locals of `forward`: the fixed names it prints, then the input arguments, then the keyed names (`Namer.keyed`)
        self.local = Namer({"steps", "batch", "i", "self", "torch", "nn", "math", "fire", "ticks", "previous"})
        self.input_arg = {i.name: self.local(i.name) for i in net.inputs}
        self.mod_arg = {m: self.local.fresh(m) for m in self.program.modulators}  # keywords, never an input's name
        self.args = ", ".join(self.input_arg.values())  # the inputs as `forward` takes them
        self.like = self.input_arg[net.inputs[0].name]  # a tensor whose dtype and device new tensors take
        self.op_attr = {(slot.path, slot.op): slot.attr for slot in self.program.op_slots}
        self.layer_attr = self.program.layer_attrs
        self.current_group: tuple[str, ...] = ()  # the layers of the step loop being printed
        self.setup: list[str] = []  # lines of that loop's ops to run before it (delay buffers, dropout masks)
        self.layers = {la.name: la for la in net.layers}
        self.inputs = {i.name: i for i in net.inputs}
        self.neurons = {la.name: lowered.neurons[la.neuron] for la in net.layers}
        self.fields = {layer: state_fields(neuron) for layer, neuron in self.neurons.items()}
        self.out_fields = Namer(rename=field_name)
        self.readouts: list[str] = []

    def src(self, line: int | None) -> tuple[str, int | None]:
        return (self.net.file, line)

    def v(self, layer: str, var: str, suffix: str = "") -> str:
        """The local holding `layer.var` (a sequence [T, ...] or, in a step loop, one step)."""
        return self.local.keyed(f"{layer}_{var}{suffix}", "var", layer, var + suffix)

    def layer_local(self, layer: str, what: str) -> str:
        """The local holding a layer's `what`: its state, params, history (a step loop's) or record."""
        return self.local.keyed(f"{layer}_{what}", what, layer)

    def plastic_attr(self, p: ir.LPath) -> str:
        """The module attribute of a plastic path's dense op."""
        return self.op_attr[(p.index, self.program.plastic_dense[p.index])]

    def plastic_local(self, p: ir.LPath, what: str) -> str:
        """The local holding a plastic path's `what` in a step loop: its weight or its rule's state."""
        return self.local.keyed(f"{self.plastic_attr(p)}_{what}", what, str(p.index))

    def emit(self) -> None:
        check_supported(self.net, OP_PRINTERS, "torch")
        emit_output_tuple(self.out, self.net, self.cls, self.out_fields, "torch.Tensor", self.cls)
        with self.out.block(f"class {self.cls}(nn.Module)", self.doc(), after=2):
            self.out.blank()
            self.emit_init()
            self.emit_forward()

    def doc(self) -> str:
        """The class's docstring: the network as declared, then the shapes `forward` takes."""
        shapes = input_shapes(self.net, self.input_arg)
        return "\n".join([*plan_lines(self.net, self.out), "", f"`forward({self.args})` takes {shapes}."])

    def emit_init(self) -> None:
        """`__init__`: the layers' modules, then each path's op modules and rule."""
        net, o = self.net, self.out
        with o.block("def __init__(self)", after=1):
            o.line("super().__init__()")
            o.line(f"self.steps = {literal(net.steps or 0)}")
            o.line(f"self.dt = {literal(net.dt)}")
            for la in net.layers:
                o.line(f"self.{self.layer_attr[la.name]} = {class_name(self.neurons[la.name].name)}"
                       f"({tuple(la.shape)!r}, dt=self.dt{keywords(la.overrides)})", self.src(la.line))
            for p in net.paths:
                self.emit_path_modules(p)

    def emit_path_modules(self, p: ir.LPath) -> None:
        """The modules of a path's ops that hold arrays (frozen or plastic as it says), then its rule."""
        o = self.out
        for k, op in enumerate(p.ops):
            attr = self.op_attr.get((p.index, k))
            if attr is None:
                continue
            o.line(f"self.{attr} = {op_module(op)}", self.src(p.line))
            if p.frozen and op.name != "dropout":
                o.line(f"self.{attr}.requires_grad_(False)")
            if p.learn and op.name == "dense":
                o.line(f"_plastic(self.{attr})  # its weights change by the rule, not by gradients")
        if p.learn:
            o.line(f"self.{self.program.rule_attrs[p.index]} = {class_name(p.learn)}"
                   f"(dt=self.dt{keywords(p.learn_args)})", self.src(p.line))

    # -- forward
    def emit_forward(self) -> None:
        """`forward`: the modulators as tensors, the program's statements, the outputs."""
        o = self.out
        mods = "".join(f", {code}=0.0" for code in self.mod_arg.values())
        doc = None
        if self.program.modulators:
            doc = (f"Modulators ({', '.join(self.program.modulators)}) are scalars or [batch] tensors for the\n"
                   "plasticity rules; plastic weights change only in training mode.")
        with o.block(f"def forward(self, {self.args}{', *' if mods else ''}{mods}) -> {self.cls}Output", doc):
            for code in self.mod_arg.values():
                o.line(f"{code} = torch.as_tensor({code}, dtype={self.like}.dtype, device={self.like}.device)"
                       ".reshape(-1)")
            start = len(o.lines)
            for statement in self.program.statements:
                self.visit(statement)
            # `steps` and `batch` only where the statements read them (no unused locals)
            line = sizes_line(self.net, self.input_arg, "self.steps", o.lines[start:])
            if line:
                o.lines.insert(start, o.indent_unit * o.level + line)
            o.line(f"return {self.cls}Output({', '.join(self.readouts)})")

    def visit_Readout(self, out: ir.Readout) -> None:
        seq = self.v(out.layer, out.var)
        value = {"count": f"{seq}.sum(0)", "rate": f"{seq}.mean(0)", "last": f"{seq}[-1]",
                 "max": f"{seq}.amax(0)", "trace": seq}[out.readout]
        self.readouts.append(f"{self.out_fields(out.output)}={value}")

    def visit_Encode(self, statement: ir.Encode) -> None:
        o = self.out
        inp = self.inputs[statement.input]
        x = self.input_arg[inp.name]
        seq = self.v(inp.name, "seq")
        if inp.encoding == "none":
            o.line(f"{seq} = {x}")
        elif inp.encoding == "direct":
            if statement.sequence:
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

    def path_value(self, p: ir.LPath, at_step: bool = False, ops: range | None = None, value: str | None = None
                   ) -> str:
        """The current a path delivers over all steps [T, batch, ...], or at step `i` of the step loop
        being printed (`at_step`). `ops` prints only those of its ops, starting from `value`."""
        static = p.index in self.program.static_paths
        if value is None:
            value = self.source(p, at_step, static)
        for k in range(len(p.ops)) if ops is None else ops:
            op = p.ops[k]
            ctx = OpContext(self.op_attr.get((p.index, k)), not at_step and not static, at_step and not static,
                            self.setup, self.local, self.like,
                            self.plastic_local(p, "weight") if p.learn and op.name == "dense" else None)
            value = OP_PRINTERS[op.name](op, value, ctx)
        return f"_repeat({value}, steps)" if static and not at_step else value

    def source(self, p: ir.LPath, at_step: bool, static: bool) -> str:
        """What a path reads: its input's sequence (a static path: the input itself) or its source's value."""
        if p.src in self.inputs:
            return self.input_arg[p.src] if static else self.v(p.src, "seq") + ("[i]" if at_step else "")
        if at_step and p.src not in self.current_group:  # a layer run before the loop: its sequence
            return self.v(p.src, p.src_var) + "[i]"
        return self.v(p.src, p.src_var, "_now" if at_step else "")

    def visit_LayerRun(self, run: ir.LayerRun) -> None:
        o, layer = self.out, run.layer
        la, neuron, attr = self.layers[layer], self.neurons[layer], self.layer_attr[layer]
        paths = [self.net.paths[i] for i in run.paths]
        o.line(f"# layer {layer} = {la.neuron}{list(la.shape)}: all steps at once")
        names = []
        for inp in neuron.inputs:
            terms = input_terms(inp, paths, self.path_value)
            if not any(p.dst_input == inp.var for p in paths):  # the sum takes the layer's shape from zeros
                ref = f"self.{attr}.init_state(1)[0]"
                terms.insert(0, (f"torch.zeros((steps, batch, *{tuple(la.shape)!r}), dtype={ref}.dtype, "
                                 f"device={ref}.device)", None))
            names.append(self.local.keyed(f"{layer}_{inp.var}", "current", layer, inp.var))
            emit_sum(o, names[-1], terms, self.net.file)
        spike = self.v(layer, "spike")
        rec = self.layer_local(layer, "record") if run.records else "_"
        o.line(f"{spike}, _, {rec} = self.{attr}.run({', '.join(names)}{', record=True' if run.records else ''})")
        for var in run.records:
            o.line(f"{self.v(layer, var)} = {rec}.{self.fields[layer][var]}")

    def visit_StepLoop(self, loop: ir.StepLoop) -> None:
        o = self.out
        group = tuple(la.layer for la in loop.layers)
        o.line(f"# layers {', '.join(group)}: step by step (recurrent or plastic paths)")
        self.current_group = group
        outside = self.emit_outside_currents(loop)
        for member in loop.layers:
            self.emit_layer_start(member)
        plastic = [self.net.paths[i] for i in loop.plastic]
        for p in plastic:
            self.emit_plastic_start(p)
        body = o.child()
        body.level += 1
        self.setup = []
        for member in loop.layers:
            self.emit_layer_step(member, outside, body)
        for line in self.setup:
            o.line(line)
        o.line("for i in range(steps):")
        o.lines.extend(body.lines)
        for p in plastic:
            with o.block("if self.training"):
                o.line(f"self.{self.plastic_attr(p)}.weight = {self.plastic_local(p, 'weight')}.detach()")
        self.current_group = ()
        for member in loop.layers:
            self.emit_layer_after(member)

    def emit_outside_currents(self, loop: ir.StepLoop) -> dict[int, str]:
        """The currents of the paths from outside the loop, computed before it: path -> their local.
        A plastic path is computed in the loop, with the weight of the step."""
        outside = {}
        for p in (self.net.paths[i] for i in loop.outside):
            if not p.learn:
                outside[p.index] = self.local.keyed(f"{p.src}_{p.dst}_current", "path", str(p.index))
                self.out.line(f"{outside[p.index]} = {self.path_value(p)}", self.src(p.line))
        return outside

    def emit_layer_start(self, member: ir.LoopLayer) -> None:
        """A layer's params, initial state, `_now` values and history before the loop."""
        o, layer, attr = self.out, member.layer, self.layer_attr[member.layer]
        state = self.layer_local(layer, "state")
        o.line(f"{self.layer_local(layer, 'params')} = self.{attr}.params()")
        o.line(f"{state} = self.{attr}.init_state(batch)")
        for var in member.now:  # what paths inside the loop read: a recurrent path sees zero at the first step
            like = f"{state}[0]" if var == "spike" else f"{state}.{self.fields[layer][var]}"
            o.line(f"{self.v(layer, var, '_now')} = torch.zeros_like({like})")
        o.line(f"{self.layer_local(layer, 'history')} = []")

    def emit_plastic_start(self, p: ir.LPath) -> None:
        """A plastic path's weight and its rule's initial state before the loop."""
        dense = p.ops[self.program.plastic_dense[p.index]]
        self.out.line(f"{self.plastic_local(p, 'weight')} = self.{self.plastic_attr(p)}.weight")
        self.out.line(f"{self.plastic_local(p, 'rule_state')} = self.{self.program.rule_attrs[p.index]}.init_state("
                      f"batch, {dense.out_shape[0]}, {dense.in_shape[0]}, {self.like})")

    def emit_layer_after(self, member: ir.LoopLayer) -> None:
        """What is read of a layer after the loop, stacked over its steps from the history."""
        o, layer = self.out, member.layer
        history = self.layer_local(layer, "history")
        if "spike" in member.after:
            o.line(f"{self.v(layer, 'spike')} = torch.stack([h[0] for h in {history}])")
        for var in member.after:
            if var != "spike":
                o.line(f"{self.v(layer, var)} = torch.stack([h[1].{self.fields[layer][var]} for h in {history}])")

    def emit_layer_step(self, member: ir.LoopLayer, outside: dict[int, str], o: CodeWriter) -> None:
        """One layer's step inside a step loop, its rules after it. Its `_now` values are updated right
        after its step, so a path from a layer earlier in the loop reads this step's value and a
        recurrent path the previous step's."""
        layer = member.layer
        neuron = self.neurons[layer]
        state = self.layer_local(layer, "state")
        paths = [p for p in self.net.paths if p.dst == layer]
        pre: dict[int, str] = {}  # plastic paths: the presynaptic activity of this step
        for p in paths:
            if p.learn:
                pre[p.index] = self.local.keyed(f"{p.src}_{layer}_pre", "pre", str(p.index))
                dense = self.program.plastic_dense[p.index]
                o.line(f"{pre[p.index]} = {self.path_value(p, True, range(dense))}", self.src(p.line))

        def current(p: ir.LPath) -> str:
            if p.index in outside:
                return f"{outside[p.index]}[i]"
            if p.index in pre:  # from its dense op on, with the weight of this step
                return self.path_value(p, True, range(self.program.plastic_dense[p.index], len(p.ops)), pre[p.index])
            return self.path_value(p, True)

        values = []
        for inp in neuron.inputs:
            mine = [p for p in paths if p.dst_input == inp.var]
            terms = input_terms(inp, mine, current)
            if not terms or (len(terms) == 1 and mine and mine[0].index in outside):
                # nothing, or one current computed before the loop (and traced there)
                values.append(terms[0][0] if terms else f"torch.zeros_like({state}[0])")
                continue
            # a path computed in the loop: its current gets a line of its own, traced to the spec
            values.append(self.local.keyed(f"{layer}_{inp.var}_now", "current_now", layer, inp.var))
            emit_sum(o, values[-1], terms, self.net.file)
        spike = self.v(layer, "spike", "_now")
        t = ", i * self.dt" if neuron.reads_t else ""
        o.line(f"{spike}, {state} = self.{self.layer_attr[layer]}.step("
               f"{self.layer_local(layer, 'params')}, {', '.join(values)}, {state}{t})")
        o.line(f"{self.layer_local(layer, 'history')}.append(({spike}, {state}))")
        for p in paths:
            if p.learn:
                rule_state, weight = self.plastic_local(p, "rule_state"), self.plastic_local(p, "weight")
                mods = "".join(f", {self.mod_arg[m]}" for m in self.lowered.rules[p.learn].modulators)
                with o.block("if self.training"):
                    o.line(f"{rule_state}, {weight} = self.{self.program.rule_attrs[p.index]}.step("
                           f"{rule_state}, {weight}, {pre[p.index]}, {spike}{mods})", self.src(p.line))
        for var in member.now:
            if var != "spike":
                o.line(f"{self.v(layer, var, '_now')} = {state}.{self.fields[layer][var]}")
