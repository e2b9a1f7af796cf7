"""The PyTorch network module: its layers, ops and rules as submodules, and `forward`, which prints
the network's program: encode each input, run each layer layer-major (the currents of all T steps
from one op on [T, batch, ...], then the neuron's `run`) or a group of layers step by step
(recurrent cycles, plastic weights), then read out the outputs. Ops are printed by `OP_PRINTERS`.
"""

from __future__ import annotations

import re

from ... import ir
from ...names import Namer, class_name, py_name
from ..base import ProgramVisitor, check_supported, emit_output_tuple, emit_sum, input_terms, plan_lines, state_fields
from ..writer import CodeWriter, literal
from .ops import OP_PRINTERS, OpContext, op_module


class NetworkEmitter(ProgramVisitor):
    def __init__(self, net: ir.LNetwork, lowered: ir.LoweredSpec, out: CodeWriter):
        self.net, self.lowered, self.out = net, lowered, out
        self.cls = class_name(net.name)
        assert net.program is not None
        self.program = net.program
        # locals of `forward`: the fixed names it prints, then the input arguments, then `scoped` names
        self.local = Namer({"steps", "batch", "i", "self", "torch", "nn", "math", "fire", "ticks", "previous"})
        self.input_arg = {i.name: self.local(i.name) for i in net.inputs}
        self.mod_arg = {m: self.local.fresh(m) for m in self.program.modulators}  # keywords, never an input's name
        self.like = self.input_arg[net.inputs[0].name]  # a tensor whose dtype and device new tensors take
        self.scoped_names: dict[tuple[str, ...], str] = {}
        self.op_attr = {(slot.path, slot.op): slot.attr for slot in self.program.op_slots}
        self.layer_attr = self.program.layer_attrs
        self.plastic_weight: dict[int, str] = {}  # a plastic path in a step loop: the local of its weight
        self.current_group: tuple[str, ...] = ()  # the layers of the step loop being printed
        self.setup: list[str] = []  # lines of that loop's ops to run before it (delay buffers, dropout masks)
        self.layers = {la.name: la for la in net.layers}
        self.inputs = {i.name: i for i in net.inputs}
        self.neurons = {la.name: lowered.neurons[la.neuron] for la in net.layers}
        self.out_fields = Namer()
        self.readouts: list[str] = []

    def src(self, line: int | None) -> tuple[str, int | None]:
        return (self.net.file, line)

    def scoped(self, base: str, *key: str) -> str:
        """The local of `forward` for `key`: named after `base`, never shared with another key."""
        if key not in self.scoped_names:
            self.scoped_names[key] = self.local.fresh(base)
        return self.scoped_names[key]

    def v(self, layer: str, var: str, suffix: str = "") -> str:
        """The local holding `layer.var` (a sequence [T, ...] or, in a step loop, one step)."""
        return self.scoped(f"{layer}_{var}{suffix}", "var", layer, var + suffix)

    def emit(self) -> None:
        check_supported(self.net, OP_PRINTERS, "torch")
        emit_output_tuple(self.out, self.net, self.cls, self.out_fields, "torch.Tensor", f"{self.cls}")
        o = self.out
        o.line(f"class {self.cls}(nn.Module):")
        with o.indent():
            self.emit_docstring()
            o.blank()
            self.emit_init()
            self.emit_forward()
        o.blank(2)

    def emit_docstring(self) -> None:
        net = self.net
        lines = plan_lines(net, self.out)
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
                    rule = class_name(p.learn)
                    kw = "".join(f", {py_name(k)}={literal(v)}" for k, v in p.learn_args.items())
                    o.line(f"self.{self.program.rule_attrs[p.index]} = {rule}(dt=self.dt{kw})", self.src(p.line))
        o.blank()

    # -- forward
    def emit_forward(self) -> None:
        net, o = self.net, self.out
        args = ", ".join(self.input_arg[i.name] for i in net.inputs)
        mods = "".join(f", {code}=0.0" for code in self.mod_arg.values())
        o.line(f"def forward(self, {args}{', *' if mods else ''}{mods}) -> {self.cls}Output:")
        with o.indent():
            if self.program.modulators:
                o.docstring(f"Modulators ({', '.join(self.program.modulators)}) are scalars or [batch] tensors for "
                            "the\nplasticity rules; plastic weights change only in training mode.")
            for code in self.mod_arg.values():
                o.line(f"{code} = torch.as_tensor({code}, dtype={self.like}.dtype, device={self.like}.device)"
                       ".reshape(-1)")
            sequences = [i for i in net.inputs if i.encoding in ("none", "delta")]
            first = self.input_arg[(sequences or list(net.inputs))[0].name]
            sizes = {"steps": f"{first}.shape[0]" if sequences else "self.steps",
                     "batch": f"{first}.shape[1]" if sequences else f"{first}.shape[0]"}
            header = len(o.lines)
            for statement in self.program.statements:
                self.visit(statement)
            # `steps` and `batch` only where the body reads them (no unused locals)
            used = [name for name in sizes if re.search(rf"\b{name}\b", "\n".join(o.lines[header:]))]
            if used:
                o.lines.insert(header, o.indent_unit * o.level + f"{', '.join(used)} = "
                               f"{', '.join(sizes[name] for name in used)}")
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
                            self.plastic_weight.get(p.index) if op.name == "dense" else None)
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
            names.append(self.scoped(f"{layer}_{inp.var}", "current", layer, inp.var))
            emit_sum(o, names[-1], terms, self.net.file)
        spike = self.v(layer, "spike")
        rec = self.scoped(f"{layer}_record", "record", layer) if run.records else "_"
        o.line(f"{spike}, _, {rec} = self.{attr}.run({', '.join(names)}{', record=True' if run.records else ''})")
        fields = state_fields(neuron)
        for var in run.records:
            o.line(f"{self.v(layer, var)} = {rec}.{fields[var]}")

    def visit_StepLoop(self, loop: ir.StepLoop) -> None:
        o = self.out
        group = tuple(la.layer for la in loop.layers)
        o.line(f"# layers {', '.join(group)}: step by step (recurrent or plastic paths)")
        outside: dict[int, str] = {}  # a path from outside the loop: the local of its current, computed first
        self.current_group = group
        for p in (self.net.paths[i] for i in loop.outside):
            if not p.learn:  # a plastic path is computed in the loop, with the weight of the step
                outside[p.index] = self.scoped(f"{p.src}_{p.dst}_current", "path", str(p.index))
                o.line(f"{outside[p.index]} = {self.path_value(p)}", self.src(p.line))
        for member in loop.layers:
            layer, attr = member.layer, self.layer_attr[member.layer]
            state = self.scoped(f"{layer}_state", "state", layer)
            fields = state_fields(self.neurons[layer])
            o.line(f"{self.scoped(f'{layer}_params', 'params', layer)} = self.{attr}.params()")
            o.line(f"{state} = self.{attr}.init_state(batch)")
            for var in member.now:  # what paths inside the loop read: a recurrent path sees zero at the first step
                like = f"{state}[0]" if var == "spike" else f"{state}.{fields[var]}"
                o.line(f"{self.v(layer, var, '_now')} = torch.zeros_like({like})")
            o.line(f"{self.scoped(f'{layer}_history', 'history', layer)} = []")
        plastic = [self.net.paths[i] for i in loop.plastic]
        for p in plastic:
            dense = p.ops[self.program.plastic_dense[p.index]]
            attr = self.op_attr[(p.index, self.program.plastic_dense[p.index])]
            self.plastic_weight[p.index] = self.scoped(f"{attr}_weight", "weight", str(p.index))
            o.line(f"{self.plastic_weight[p.index]} = self.{attr}.weight")
            o.line(f"{self.scoped(f'{attr}_rule_state', 'rule_state', str(p.index))} = "
                   f"self.{self.program.rule_attrs[p.index]}.init_state(batch, {dense.out_shape[0]}, "
                   f"{dense.in_shape[0]}, {self.like})")
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
            o.line("if self.training:")
            with o.indent():
                o.line(f"self.{self.op_attr[(p.index, self.program.plastic_dense[p.index])]}.weight = "
                       f"{self.plastic_weight[p.index]}.detach()")
        self.current_group = ()
        for member in loop.layers:
            layer = member.layer
            fields = state_fields(self.neurons[layer])
            history = self.scoped(f"{layer}_history", "history", layer)
            if "spike" in member.after:
                o.line(f"{self.v(layer, 'spike')} = torch.stack([h[0] for h in {history}])")
            for var in member.after:
                if var != "spike":
                    o.line(f"{self.v(layer, var)} = torch.stack([h[1].{fields[var]} for h in {history}])")

    def emit_layer_step(self, member: ir.LoopLayer, outside: dict[int, str], o: CodeWriter) -> None:
        """One layer's step inside a step loop, its rules after it. Its `_now` values are updated right
        after its step, so a path from a layer earlier in the loop reads this step's value and a
        recurrent path the previous step's."""
        layer = member.layer
        neuron = self.neurons[layer]
        fields = state_fields(neuron)
        state = self.scoped(f"{layer}_state", "state", layer)
        paths = [p for p in self.net.paths if p.dst == layer]
        pre: dict[int, str] = {}  # plastic paths: the presynaptic activity of this step
        for p in paths:
            if p.learn:
                pre[p.index] = self.scoped(f"{p.src}_{layer}_pre", "pre", str(p.index))
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
            values.append(self.scoped(f"{layer}_{inp.var}_now", "current_now", layer, inp.var))
            emit_sum(o, values[-1], terms, self.net.file)
        spike = self.v(layer, "spike", "_now")
        t = ", i * self.dt" if neuron.reads_t else ""
        o.line(f"{spike}, {state} = self.{self.layer_attr[layer]}.step("
               f"{self.scoped(f'{layer}_params', 'params', layer)}, {', '.join(values)}, {state}{t})")
        o.line(f"{self.scoped(f'{layer}_history', 'history', layer)}.append(({spike}, {state}))")
        for p in paths:
            if p.learn:
                rule_state = self.scoped("", "rule_state", str(p.index))
                weight = self.plastic_weight[p.index]
                mods = "".join(f", {self.mod_arg[m]}" for m in self.lowered.rules[p.learn].modulators)
                o.line("if self.training:")
                with o.indent():
                    o.line(f"{rule_state}, {weight} = self.{self.program.rule_attrs[p.index]}.step("
                           f"{rule_state}, {weight}, {pre[p.index]}, {spike}{mods})", self.src(p.line))
        for var in member.now:
            if var != "spike":
                o.line(f"{self.v(layer, var, '_now')} = {state}.{fields[var]}")
