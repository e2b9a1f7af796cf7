"""The PyTorch network module: encodings, connections and the execution plan.

Layers outside recurrent cycles run layer-major: the currents of all T steps come from one
op on a [T, batch, ...] tensor, then the neuron's `run` loops over time. Groups of layers
closed by a recurrent path run step-major, in one loop over time. Ops are printed by
`OP_PRINTERS`, one function per op, so new ops are additive.
"""

from __future__ import annotations

import re

from ... import ir
from ...names import Namer, class_name, py_name
from ..base import ProgramVisitor, check_supported, emit_output_tuple, emit_sum, plan_lines, state_fields
from ..writer import CodeWriter, literal
from .ops import OP_PRINTERS, OpContext, op_module


class NetworkEmitter(ProgramVisitor):
    def __init__(self, net: ir.LNetwork, lowered: ir.LoweredSpec, out: CodeWriter):
        self.net = net
        self.lowered = lowered
        self.out = out
        self.cls = class_name(net.name)
        assert net.program is not None
        self.program = program = net.program
        self.layer_attr = program.layer_attrs
        # locals of `forward`: the fixed names it prints, then the input arguments, then `scoped` names
        self.local = Namer({"steps", "batch", "i", "self", "torch", "nn", "math", "fire", "ticks", "previous"})
        self.input_arg = {i.name: self.local(i.name) for i in net.inputs}
        self.scoped_names: dict[tuple[str, ...], str] = {}
        self.op_attr = {(slot.path, slot.op): slot.attr for slot in program.op_slots}
        self.rule_attr = program.rule_attrs
        self.modulators = program.modulators
        self.plastic_dense = program.plastic_dense
        self.mod_arg = {m: self.local.fresh(m) for m in self.modulators}  # keywords of forward, never an input's name
        self.plastic_weight: dict[int, str] = {}
        self.current_group: tuple[str, ...] = ()
        self.layers = {la.name: la for la in net.layers}
        self.inputs = {i.name: i for i in net.inputs}
        self.neurons = {la.name: lowered.neurons[la.neuron] for la in net.layers}
        self.out_fields = Namer()

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
                    o.line(f"self.{self.rule_attr[p.index]} = {rule}(dt=self.dt{kw})", self.src(p.line))
        o.blank()

    # -- forward
    def emit_forward(self) -> None:
        net, o = self.net, self.out
        args = ", ".join(self.input_arg[i.name] for i in net.inputs)
        mods = "".join(f", {code}=0.0" for code in self.mod_arg.values())
        o.line(f"def forward(self, {args}{', *' if mods else ''}{mods}) -> {self.cls}Output:")
        with o.indent():
            if self.modulators:
                o.docstring("Modulators (" + ", ".join(self.modulators) + ") are scalars or [batch] tensors for the\n"
                            "plasticity rules; plastic weights change only in training mode.")
            like = self.input_arg[net.inputs[0].name]
            for code in self.mod_arg.values():
                o.line(f"{code} = torch.as_tensor({code}, dtype={like}.dtype, device={like}.device).reshape(-1)")
            sequences = [i for i in net.inputs if i.encoding in ("none", "delta")]
            first = self.input_arg[(sequences or list(net.inputs))[0].name]
            sizes = {"steps": f"{first}.shape[0]" if sequences else "self.steps",
                     "batch": f"{first}.shape[1]" if sequences else f"{first}.shape[0]"}
            header = len(o.lines)
            self.readouts: list[str] = []
            for statement in self.program.statements:
                self.visit(statement)
            # `steps` and `batch` only where the body reads them (no unused locals)
            body = "\n".join(o.lines[header:])
            used = [name for name in sizes if re.search(rf"\b{name}\b", body)]
            if used:
                line = f"{', '.join(used)} = {', '.join(sizes[u] for u in used)}"
                o.lines.insert(header, o.indent_unit * o.level + line)
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

    def path_value(self, p: ir.LPath, time_axis: bool, at_step: bool, setup: list[str] | None = None,
                   ops: tuple[int, int] | None = None, value: str | None = None) -> str:
        """The current a path delivers: over all steps (`time_axis`) or at step i of a loop.

        Lines that must run once before a step loop (delay buffers, dropout masks) go to `setup`.
        `ops` prints only ops[start:end], starting from `value`.
        """
        inputs = {i.name for i in self.net.inputs}
        static = p.index in self.program.static_paths
        if value is not None:
            pass
        elif p.src in inputs:
            value = self.input_arg[p.src] if static else self.v(p.src, "seq") + ("[i]" if at_step else "")
        elif at_step and p.src not in self.current_group:
            value = self.v(p.src, p.src_var) + "[i]"
        else:
            value = self.v(p.src, p.src_var, "" if time_axis else "_now")
        like = self.input_arg[self.net.inputs[0].name]
        start, end = ops or (0, len(p.ops))
        for k in range(start, end):
            op = p.ops[k]
            ctx = OpContext(self.op_attr.get((p.index, k)), time_axis and not static, at_step and not static,
                            setup if setup is not None else [], self.local, like,
                            self.plastic_weight.get(p.index) if op.name == "dense" else None)
            value = OP_PRINTERS[op.name](op, value, ctx)
        return f"_repeat({value}, steps)" if static and time_axis else value

    def currents(self, layer: str, time_axis: bool, paths: list[ir.LPath], at_step: bool = False
                 ) -> list[list[tuple[str, int | None]]]:
        """Per neuron input of `layer`, the terms summed into it: (expression, spec line) for each
        path, then the input's default."""
        neuron = self.neurons[layer]
        shape = self.layers[layer].shape
        out = []
        for inp in neuron.inputs:
            terms = [(self.path_value(p, time_axis, at_step), p.line) for p in paths if p.dst_input == inp.var]
            default = inp.value.value if isinstance(inp.value, ir.Num) else 0.0
            if default:
                terms.append((literal(default), inp.line))
            if not terms or (len(terms) == 1 and default):
                lead = "steps, batch" if time_axis else "batch"
                ref = f"self.{self.layer_attr[layer]}.init_state(1)[0]"
                zeros = f"torch.zeros(({lead}, *{tuple(shape)!r}), dtype={ref}.dtype, device={ref}.device)"
                terms.insert(0, (zeros, None))
            out.append(terms)
        return out

    def visit_LayerRun(self, run: ir.LayerRun) -> None:
        o = self.out
        layer = run.layer
        la = self.layers[layer]
        attr = self.layer_attr[layer]
        paths = [self.net.paths[i] for i in run.paths]
        o.line(f"# layer {layer} = {la.neuron}{list(la.shape)}: all {'steps'} at once")
        currents = self.currents(layer, True, paths)
        names = []
        for inp, terms in zip(self.neurons[layer].inputs, currents, strict=True):
            name = self.scoped(f"{layer}_{inp.var}", "current", layer, inp.var)
            emit_sum(o, name, terms, self.net.file)
            names.append(name)
        states = run.records
        record = bool(states)
        spike = self.v(layer, "spike")
        rec = self.scoped(f"{layer}_record", "record", layer) if record else "_"
        o.line(f"{spike}, _, {rec} = self.{attr}.run({', '.join(names)}{', record=True' if record else ''})")
        neuron = self.neurons[layer]
        fields = state_fields(neuron)
        for var in states:
            o.line(f"{self.v(layer, var)} = {rec}.{fields[var]}")

    def visit_StepLoop(self, loop: ir.StepLoop) -> None:
        o = self.out
        group = tuple(la.layer for la in loop.layers)
        self.loop_reads = {la.layer: la.now for la in loop.layers}
        after = {la.layer: la.after for la in loop.layers}
        o.line(f"# layers {', '.join(group)}: step by step (recurrent or plastic paths)")
        outside: dict[int, str] = {}
        self.current_group = group
        for p in (self.net.paths[i] for i in loop.outside):
            if not p.learn:  # a plastic path is computed in the loop, with the weight of the step
                name = self.scoped(f"{p.src}_{p.dst}_current", "path", str(p.index))
                o.line(f"{name} = {self.path_value(p, True, False)}", self.src(p.line))
                outside[p.index] = name
        for layer in group:
            attr = self.layer_attr[layer]
            state = self.scoped(f"{layer}_state", "state", layer)
            fields = state_fields(self.neurons[layer])
            o.line(f"{self.scoped(f'{layer}_params', 'params', layer)} = self.{attr}.params()")
            o.line(f"{state} = self.{attr}.init_state(batch)")
            # what paths inside the group read: a recurrent path sees zero at the first step
            for var in self.loop_reads[layer]:
                like = f"{state}[0]" if var == "spike" else f"{state}.{fields[var]}"
                o.line(f"{self.v(layer, var, '_now')} = torch.zeros_like({like})")
            o.line(f"{self.scoped(f'{layer}_history', 'history', layer)} = []")
        setup: list[str] = []
        plastic = [self.net.paths[i] for i in loop.plastic]
        for p in plastic:
            dense = self.plastic_dense[p.index]
            attr = self.op_attr[(p.index, dense)]
            weight = self.scoped(f"{attr}_weight", "weight", str(p.index))
            self.plastic_weight[p.index] = weight
            o.line(f"{weight} = self.{attr}.weight")
            like = self.input_arg[self.net.inputs[0].name]
            rule_state = self.scoped(f"{attr}_rule_state", "rule_state", str(p.index))
            op = p.ops[dense]
            o.line(f"{rule_state} = self.{self.rule_attr[p.index]}.init_state(batch, {op.out_shape[0]}, "
                   f"{op.in_shape[0]}, {like})")
        body = o.child()
        body.level += 1
        self.emit_step_loop(group, outside, setup, body)
        for line in setup:
            o.line(line)
        o.line("for i in range(steps):")
        o.lines.extend(body.lines)
        for p in plastic:
            dense = self.plastic_dense[p.index]
            o.line("if self.training:")
            with o.indent():
                o.line(f"self.{self.op_attr[(p.index, dense)]}.weight = {self.plastic_weight[p.index]}.detach()")
        self.current_group = ()
        for layer in group:
            fields = state_fields(self.neurons[layer])
            history = self.scoped(f"{layer}_history", "history", layer)
            if "spike" in after[layer]:
                o.line(f"{self.v(layer, 'spike')} = torch.stack([h[0] for h in {history}])")
            for var in after[layer]:
                if var == "spike":
                    continue
                o.line(f"{self.v(layer, var)} = torch.stack([h[1].{fields[var]} for h in {history}])")

    def emit_step_loop(self, group: tuple[str, ...], outside: dict[int, str], setup: list[str],
                       o: CodeWriter) -> None:
        """The body of a step-major loop over time, for the layers of `group` in order.

        A layer's `_now` values are updated right after its step, so a path from a layer declared
        earlier in the group reads this step's value and a recurrent path the previous step's.
        """
        for layer in group:
            neuron = self.neurons[layer]
            fields = state_fields(neuron)
            state = self.scoped(f"{layer}_state", "state", layer)
            paths = [p for p in self.net.paths if p.dst == layer]
            pre: dict[int, str] = {}  # plastic paths: the presynaptic activity of this step
            for p in paths:
                if p.learn:
                    dense = self.plastic_dense[p.index]
                    pre[p.index] = self.scoped(f"{p.src}_{layer}_pre", "pre", str(p.index))
                    o.line(f"{pre[p.index]} = {self.path_value(p, False, True, setup, (0, dense))}", self.src(p.line))
            terms_by_input = []
            for inp in neuron.inputs:
                mine = [p for p in paths if p.dst_input == inp.var]
                terms = [(f"{outside[p.index]}[i]" if p.index in outside else self.path_value(
                    p, False, True, setup, *self.plastic_rest(p, pre)), p.line) for p in mine]
                default = inp.value.value if isinstance(inp.value, ir.Num) else 0.0
                if default:
                    terms.append((literal(default), inp.line))
                if not terms or (len(terms) == 1 and mine and mine[0].index in outside):
                    # nothing, or one current computed before the loop (and traced there)
                    terms_by_input.append(terms[0][0] if terms else f"torch.zeros_like({state}[0])")
                    continue
                # a path computed in the loop: its current gets a line of its own, traced to the spec
                name = self.scoped(f"{layer}_{inp.var}_now", "current_now", layer, inp.var)
                emit_sum(o, name, terms, self.net.file)
                terms_by_input.append(name)
            spike = self.v(layer, "spike", "_now")
            t = ", i * self.dt" if neuron.reads_t else ""
            o.line(f"{spike}, {state} = self.{self.layer_attr[layer]}.step("
                   f"{self.scoped(f'{layer}_params', 'params', layer)}, {', '.join(terms_by_input)}, {state}{t})")
            o.line(f"{self.scoped(f'{layer}_history', 'history', layer)}.append(({spike}, {state}))")
            for p in paths:
                if p.learn:
                    rule_state = self.scoped("", "rule_state", str(p.index))
                    weight = self.plastic_weight[p.index]
                    mods = "".join(f", {self.mod_arg[m]}" for m in self.lowered.rules[p.learn].modulators)
                    o.line("if self.training:")
                    with o.indent():
                        o.line(f"{rule_state}, {weight} = self.{self.rule_attr[p.index]}.step("
                               f"{rule_state}, {weight}, {pre[p.index]}, {spike}{mods})", self.src(p.line))
            for var in self.loop_reads[layer]:
                if var != "spike":
                    o.line(f"{self.v(layer, var, '_now')} = {state}.{fields[var]}")

    def plastic_rest(self, p: ir.LPath, pre: dict[int, str]) -> tuple:
        """For a plastic path: print from its dense op on, starting at the presynaptic local."""
        if p.index not in pre:
            return ()
        dense = self.plastic_dense[p.index]
        return (dense, len(p.ops)), pre[p.index]
